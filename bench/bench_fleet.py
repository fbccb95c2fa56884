"""Idle-but-connected virtual devices in one driver process, and the memory each costs.

Starts the DM regions of a local stack in a temporary home, deploys N devices spread over the
three regions (default 5,000; ROOMTRUST_BENCH_FLEET_DEVICES), powers them up (real connectivity
checks, SNTP, enrollment over HTTPS, mutual-TLS heartbeats every 30 s, telemetry, an open WSS
command channel each), waits one heartbeat period with everyone online, and reports:
- devices per process: how many are online with their command channel open at the end;
- heartbeats accepted during that idle period (about one per device);
- memory per device: the driver process's resident-memory growth from before the fleet was made
  to the end of the idle period, divided by the connected devices (everything a device costs:
  agent, keys, SSL context, channel, timers, and what enrollment left on the heap);
- devices per GB (10^9 bytes) and per GiB.

Power-up is paced by the servers, not by a fixed rate: a device is switched on when fewer than
`POWER_UP_WINDOW` devices are between power-on and online (and at most `POWER_UPS_PER_S` a second),
so the rate follows what the DM regions (CSR signing, database writes, handshakes) and the driver
can take on the machine at the time, and no device times out behind a queue. The CPU that driver
and DM regions spend per power-up is reported.

For comparison it measures, in a fresh process and with the certificates of the same run, the
floor of what CPython and OpenSSL charge for one device: an SSL context holding the device's own
certificate and key, and one idle mutual-TLS connection to the DM server. The driver's figure
divided by the floor is what the rest of the driver (agent, WebSocket state, timers) adds.

Every heartbeat opens a fresh mutual-TLS connection (a full handshake on both sides); the CPU the
driver and the DM regions spend in the idle period is reported per heartbeat.

Goals: >= 5,000 devices per process and >= 10,000 devices per GB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devices_virtual.agent import Phase
from devices_virtual.driver.fleet import FleetRun
from devices_virtual.driver.io import raise_open_files_limit, run_loop
from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import parse_scenario
from protocol.regions import DM_REGIONS
from protocol.stack import Stack
from roomtrust.stack import launcher

GOAL_DEVICES = 5_000
GOAL_PER_GB = 10_000
HEARTBEAT_S = 30.0
POWER_UPS_PER_S = 50.0  # at most; each costs four TLS handshakes and a CSR signed by the region
POWER_UP_WINDOW = 24  # devices between power-on and online at once
FLOOR_SAMPLE = 500
STALL_S = 300.0  # enrollment is over when no device has come online for this long
GB, GIB = 10**9, 1 << 30


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scenario(devices: int) -> Any:
    names = list(CATALOGUE)
    fleets = []
    for index, region in enumerate(DM_REGIONS):  # spread the server load over the DM regions
        share = devices // len(DM_REGIONS) + (1 if index < devices % len(DM_REGIONS) else 0)
        per_model, rest = divmod(share, len(names))
        models = {name: per_model + (1 if i < rest else 0) for i, name in enumerate(names)}
        fleets.append(
            {
                "name": f"bench-{region}",
                "dm_region": region,
                "sites": [{"name": "B"}],
                "models": models,
            }
        )
    return parse_scenario(
        {
            "name": "bench-fleet",
            "timing": {"heartbeat_s": HEARTBEAT_S, "telemetry_s": 900, "boot_scale": 0},
            "fleets": fleets,
            "phases": [{"kind": "deploy"}],
        }
    )


async def measure(stack: Stack, work: Path, devices: int) -> dict[str, Any]:
    run = FleetRun(scenario(devices), stack, work, keep_connections=False)
    servers = [stack.endpoint("dm", region).pid for region in stack.regions("dm")]
    gc.collect()
    before = rss_bytes()
    await run.start()
    try:
        all_devices = [d for state in run.fleets.values() for d in state.devices]
        for phase in run.scenario.phases:
            await run.run_phase(phase)
        started = time.perf_counter()
        cpu_started = time.process_time()
        servers_started = sum(cpu_seconds(pid) for pid in servers)
        await power_up(all_devices)
        await until_settled(all_devices)
        enrolled = time.perf_counter() - started
        enroll_cpu = time.process_time() - cpu_started
        enroll_servers_cpu = sum(cpu_seconds(pid) for pid in servers) - servers_started
        ready = [d for d in all_devices if d.agent.phase is Phase.ONLINE]
        beats_before = sum(d.stats["heartbeat:200"] for d in all_devices)
        failed_before = sum(d.stats["heartbeat:failed"] for d in all_devices)
        idle_started = time.perf_counter()
        cpu_started = time.process_time()
        servers_started = sum(cpu_seconds(pid) for pid in servers)
        await asyncio.sleep(HEARTBEAT_S + 2)  # one full heartbeat period, everyone idle
        idle = time.perf_counter() - idle_started
        cpu = time.process_time() - cpu_started
        servers_cpu = sum(cpu_seconds(pid) for pid in servers) - servers_started
        gc.collect()
        after = rss_bytes()
        connected = [
            d for d in all_devices if d.agent.phase is Phase.ONLINE and d.agent.channel_open
        ]
        beats = sum(d.stats["heartbeat:200"] for d in all_devices) - beats_before
        failed = sum(d.stats["heartbeat:failed"] for d in all_devices) - failed_before
        sample = [
            {
                "ca": str(d.dm_ca_file),
                "cert": str(d.keys.cert_file),
                "key": str(d.keys.key_file),
                "url": run.fleets[d.fleet].dm_url,
            }
            for d in connected[:FLOOR_SAMPLE]
        ]
    finally:
        await run.close()
    return {
        "devices": devices,
        "enrolled_online": len(ready),
        "connected": len(connected),
        "enroll_s": enrolled,
        "enroll_cpu_s": enroll_cpu,
        "enroll_servers_cpu_s": enroll_servers_cpu,
        "heartbeats": beats,
        "heartbeats_failed": failed,
        "idle_s": idle,
        "idle_cpu_s": cpu,
        "servers_cpu_s": servers_cpu,
        "growth_bytes": after - before,
        "floor_sample": sample,
    }


async def power_up(
    devices: list[Any], window: int = POWER_UP_WINDOW, rate: float = POWER_UPS_PER_S
) -> None:
    """Switch every device on, keeping at most `window` of them between power-on and online
    and starting at most `rate` a second. A device that has not come online within the driver's
    request timeout (it is backing off after a failure) leaves the window, so one slow device
    cannot hold up the rest."""
    loop = asyncio.get_running_loop()
    pending: dict[Any, float] = {}  # powering up -> when it was switched on
    for device in devices:
        while True:
            now = loop.time()
            for d, at in list(pending.items()):
                if d.agent.phase is Phase.ONLINE or now - at > d.io.timeout:
                    del pending[d]
            if len(pending) < window:
                break
            await asyncio.sleep(0.02)
        device.power_on()
        pending[device] = loop.time()
        await asyncio.sleep(1 / rate)


async def until_settled(devices: list[Any], quiet_s: float = STALL_S) -> None:
    """Devices that failed a step back off and retry: wait on while devices keep coming online,
    until all are or none has for `quiet_s` seconds."""
    best, since = -1, time.monotonic()
    while True:
        online = sum(d.agent.phase is Phase.ONLINE for d in devices)
        if online == len(devices):
            return
        if online > best:
            best, since = online, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        await asyncio.sleep(5)


# -- the floor, in a fresh process ------------------------------------------------------------------


def floor(sample: list[dict[str, str]]) -> dict[str, float]:
    """RSS per SSL context with a device's certificate, and per idle mutual-TLS connection."""
    from services.common.tls import client_context

    gc.collect()
    start = rss_bytes()
    contexts = [client_context(s["ca"], Path(s["cert"]), Path(s["key"])) for s in sample]
    gc.collect()
    with_contexts = rss_bytes()
    connections = []
    for spec, ctx in zip(sample, contexts, strict=True):
        host, _, port = spec["url"].removeprefix("https://").partition(":")
        raw = socket.create_connection((host, int(port)), timeout=20)
        connections.append(ctx.wrap_socket(raw, server_hostname=host))  # handshake done
    gc.collect()
    with_connections = rss_bytes()
    for conn in connections:
        conn.close()
    count = max(len(sample), 1)
    return {
        "count": len(sample),
        "context_bytes": (with_contexts - start) / count,
        "connection_bytes": (with_connections - with_contexts) / count,
    }


def measure_floor(sample: list[dict[str, str]], home: Path) -> dict[str, float] | None:
    if not sample:
        return None
    spec = home / "floor.json"
    spec.write_text(json.dumps(sample))
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_fleet", "--floor", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        print(f"floor measurement failed: {done.stderr.strip()[-500:]}")
        return None
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(figures: dict[str, Any], floor_figures: dict[str, float] | None) -> None:
    connected = figures["connected"]
    per_device = figures["growth_bytes"] / max(connected, 1)
    per_gb = GB / per_device if per_device > 0 else float("inf")
    per_gib = GIB / per_device if per_device > 0 else float("inf")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(
        f"devices started:                     {figures['devices']:,} over {len(DM_REGIONS)} DM regions"
    )
    powered = max(figures["enrolled_online"], 1)
    print(
        f"enrolled and online:                 {figures['enrolled_online']:,} "
        f"(power-up and enrollment took {figures['enroll_s']:.0f} s, "
        f"{figures['enrolled_online'] / max(figures['enroll_s'], 1e-9):.1f} devices/s)"
    )
    print(
        f"CPU per power-up:                    driver {1000 * figures['enroll_cpu_s'] / powered:.1f} ms, "
        f"DM regions {1000 * figures['enroll_servers_cpu_s'] / powered:.1f} ms "
        "(stand-ins, checks, SNTP, enrollment, first reports and channel; "
        "heartbeats of the devices already online included)"
    )
    print(
        f"idle-but-connected (one process):    {connected:,}   goal >= {GOAL_DEVICES:,}: "
        f"{verdict(connected >= GOAL_DEVICES)}"
    )
    expected = connected * figures["idle_s"] / HEARTBEAT_S
    print(
        f"heartbeats in the {figures['idle_s']:.0f} s idle period:   "
        f"{figures['heartbeats']:,} accepted (about {expected:,.0f} expected), "
        f"{figures['heartbeats_failed']:,} failed"
    )
    print(
        f"CPU in that period:                  driver {figures['idle_cpu_s']:.1f} s, "
        f"DM regions {figures['servers_cpu_s']:.1f} s "
        f"(per heartbeat {1000 * figures['idle_cpu_s'] / max(figures['heartbeats'], 1):.1f} ms "
        f"and {1000 * figures['servers_cpu_s'] / max(figures['heartbeats'], 1):.1f} ms; "
        f"machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"driver memory per device:            {per_device / 1024:.1f} KiB")
    print(
        f"devices per GB (10^9 bytes):         {per_gb:,.0f}   goal >= {GOAL_PER_GB:,}: "
        f"{verdict(per_gb >= GOAL_PER_GB)}   ({per_gib:,.0f} per GiB)"
    )
    if floor_figures is None:
        print("floor:                               not measured")
        return
    ctx, conn = floor_figures["context_bytes"], floor_figures["connection_bytes"]
    least = ctx + conn
    print(
        f"floor, in a fresh process, {int(floor_figures['count'])} devices' own certificates "
        "(no driver at all):"
    )
    print(f"  SSL context with the device's certificate and key:  {ctx / 1024:6.1f} KiB")
    print(f"  one idle mutual-TLS connection to the DM server:     {conn / 1024:6.1f} KiB")
    print(
        f"  together, the least one device can cost:            {least / 1024:6.1f} KiB "
        f"(at most {GB / least:,.0f} devices per GB)"
    )
    print(
        f"driver / floor:                      {per_device / least:.2f} "
        f"(the driver adds {(per_device - least) / 1024:.1f} KiB per device: agent, keys, "
        "WebSocket state, timers, counters, heap left by enrollment)"
    )


def main() -> None:
    devices = int(os.environ.get("ROOMTRUST_BENCH_FLEET_DEVICES", GOAL_DEVICES))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the DM regions on a kill
    # every device holds a socket here and one in a DM region (the regions inherit the limit)
    limit = raise_open_files_limit(2 * devices + 2048)
    if limit < devices + 1024:
        print(f"open-files limit {limit} is too low for {devices} devices; raise `ulimit -n`")
    with tempfile.TemporaryDirectory(prefix="roomtrust-bench-fleet-") as tmp:
        home = Path(tmp)
        stack = launcher.start(home, services=["dm"])
        print(
            f"{devices:,} devices over DM regions {', '.join(DM_REGIONS)}; "
            f"power-up at most {POWER_UP_WINDOW} at once and {POWER_UPS_PER_S:.0f}/s; "
            f"open-files limit {limit}",
            flush=True,
        )
        try:
            figures = run_loop(measure(stack, home / "work", devices))
            floor_figures = measure_floor(figures["floor_sample"], home)
        finally:
            launcher.stop(home)
    report(figures, floor_figures)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor"]:
        print(json.dumps(floor(json.loads(Path(sys.argv[2]).read_text()))))
    else:
        main()
