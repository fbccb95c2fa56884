"""Idle-but-connected virtual devices in one driver process, and the memory each costs.

Starts the DM regions of a local stack in a temporary home, deploys N devices spread over the
three regions (default 5,000; ROOMTRUST_BENCH_FLEET_DEVICES), powers them up at a steady pace (real connectivity checks, SNTP, enrollment over
HTTPS, mutual-TLS heartbeats every 30 s, telemetry, an open WSS command channel each), waits one
heartbeat period with everyone online, and reports:
- devices per process: how many are online and connected at the end;
- memory per device: the driver's resident-memory growth divided by the devices;
- devices per GB;
- baseline (same run): the resident memory of one bare mutual-TLS client context, the least a
  device with its own certificate can cost; the ratio shows what the rest of a device adds.
Goals: >= 5,000 devices per process and >= 10,000 devices per GB.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from devices_virtual.agent import Phase
from devices_virtual.driver.fleet import FleetRun
from devices_virtual.driver.io import run_loop
from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import parse_scenario
from infra.local import stack as local_stack
from services.common.settings import DM_REGIONS

GOAL_DEVICES = 5_000
GOAL_PER_GB = 10_000
HEARTBEAT_S = 30.0
POWER_UPS_PER_S = 12.0  # enrollment is the costly step for the DM regions on a small machine


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
            "phases": [
                {"kind": "deploy"},
                {
                    "kind": "enroll",
                    "within_s": max(30.0, devices / POWER_UPS_PER_S),
                    "timeout_s": 300,
                },
            ],
        }
    )


async def measure(stack: dict[str, Any], work: Path, devices: int) -> dict[str, float]:
    from services.common.tls import client_context

    run = FleetRun(scenario(devices), stack, work, keep_connections=False)
    gc.collect()
    before = rss_bytes()
    await run.start()
    try:
        all_devices = [d for state in run.fleets.values() for d in state.devices]
        for phase in run.scenario.phases:
            await run.run_phase(phase)
        ready = [d for d in all_devices if d.agent.phase is Phase.ONLINE]
        started = time.perf_counter()
        await asyncio.sleep(HEARTBEAT_S + 2)  # one full heartbeat period, everyone idle
        gc.collect()
        after = rss_bytes()
        online = sum(d.agent.phase is Phase.ONLINE and d.agent.channel_open for d in all_devices)
        heartbeats = sum(d.stats["heartbeat:200"] for d in all_devices)
        failed = sum(d.stats["heartbeat:failed"] for d in all_devices)
        idle = time.perf_counter() - started
        # baseline: bare mutual-TLS contexts, the floor of what a device with its own cert costs
        probe = ready[0] if ready else all_devices[0]
        contexts_before = rss_bytes()
        extra = [
            client_context(probe.dm_ca_file, probe.keys.cert_file, probe.keys.key_file)
            for _ in range(500)
        ]
        baseline = (rss_bytes() - contexts_before) / len(extra)
        del extra
    finally:
        await run.close()
    per_device = (after - before) / max(online, 1)
    return {
        "devices": float(devices),
        "enrolled_online": float(len(ready)),
        "online_connected": float(online),
        "heartbeats": float(heartbeats),
        "heartbeats_failed": float(failed),
        "idle_s": idle,
        "per_device_bytes": per_device,
        "baseline_bytes": baseline,
    }


def main() -> None:
    devices = int(os.environ.get("ROOMTRUST_BENCH_FLEET_DEVICES", GOAL_DEVICES))
    with tempfile.TemporaryDirectory(prefix="roomtrust-bench-fleet-") as tmp:
        home = Path(tmp)
        stack = local_stack.start(home, services=["dm"])
        print(f"{devices} devices over DM regions {', '.join(DM_REGIONS)}", flush=True)
        try:
            figures = run_loop(measure(stack, home / "work", devices))
        finally:
            local_stack.stop(home)
    per_device = figures["per_device_bytes"]
    per_gb = (1 << 30) / per_device if per_device > 0 else float("inf")
    online = int(figures["online_connected"])
    print(f"devices started:                  {int(figures['devices'])}")
    print(f"idle-but-connected (one process): {online}   goal >= {GOAL_DEVICES}")
    print(
        f"heartbeats accepted in the idle {figures['idle_s']:.0f} s: {int(figures['heartbeats'])} "
        f"(every {HEARTBEAT_S:.0f} s), {int(figures['heartbeats_failed'])} failed"
    )
    print(f"memory per device:                {per_device / 1024:.1f} KiB")
    print(f"devices per GB:                   {per_gb:,.0f}   goal >= {GOAL_PER_GB:,}")
    print(f"baseline, one mTLS context:       {figures['baseline_bytes'] / 1024:.1f} KiB")
    print(f"ratio device / baseline:          {per_device / max(figures['baseline_bytes'], 1):.1f}")


if __name__ == "__main__":
    main()
