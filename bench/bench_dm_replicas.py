"""A DM region as three replicas behind HAProxy against the same region as one replica behind the
same HAProxy, both on a fresh PostgreSQL database, measured in the same run.

- Telemetry throughput: 120 devices over mutual TLS, each on its own keep-alive connection
  through the balancer (leastconn spreads the connections), sending back to back (closed loop).
  The ratio is the three replicas' rate over the one replica's (goal >= 0.8: on this two-core
  machine the replicas share the cores with the load generator and PostgreSQL, so the goal is
  that replication costs little, not that it scales).
- Cross-replica command latency: an administrator's request for a device command made directly
  on replica A while the device's command channel (WSS, mTLS) is held by replica B, timed from
  the request to the command's arrival on the channel (the commit's NOTIFY reaching B, B claiming
  and sending it); p50 and p99 of 150 commands (goal: p99 < 250 ms). The same figure with the
  channel on A itself is shown beside it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
import websockets

from bench.bench_dm_telemetry import _hammer
from protocol.dm_channel import PATH as CHANNEL_PATH
from protocol.dm_channel import Ack
from roomtrust.container_host import postgres_missing
from roomtrust.harness.replicas import BalancedRegion, balanced_region
from roomtrust.stack.balancer import haproxy_missing
from services.dm.client import DeviceCredential, DmAdmin

DEVICES = 120
COMMANDS = 150
PASSWORD = "correct horse battery"
MODEL = "MeetingBar A10"


def _enroll(
    region: BalancedRegion, home: Path, count: int, prefix: str = "01"
) -> tuple[DmAdmin, list[DeviceCredential]]:
    url, ca = region.stack.endpoint("dm", region.region).url, region.ca_file
    admin = DmAdmin(url, ca)
    email = f"bench-{secrets.token_hex(3)}@example.com"
    admin.register("Bench Inc", email, PASSWORD)
    admin.login(email, PASSWORD)
    site = admin.create_site("Lab", "UTC")
    devices = []
    for i in range(count):
        device = DeviceCredential(
            f"02:00:00:{prefix}:{i // 256:02x}:{i % 256:02x}", f"R{prefix}{i}", MODEL, home / "keys"
        )
        device.device_id = admin.deploy(device.mac, device.serial_number, device.model, site)
        if device.enroll(url, ca).status_code != 201:
            raise RuntimeError("enrollment failed")
        devices.append(device)
    return admin, devices


async def _telemetry_rate(url: str, ca: Path, devices: list[DeviceCredential]) -> float:
    clients = [
        httpx.AsyncClient(base_url=url, verify=d.ssl_context(ca), timeout=30) for d in devices
    ]
    body = {"status": "online", "firmware_version": "1.0.0", "network_type": "ethernet"}
    try:
        await _hammer(clients, "/v1/device/telemetry", body)  # warm-up: handshakes, pools
        rate, _latencies = await _hammer(clients, "/v1/device/telemetry", body)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return rate


async def _command_latencies(
    admin_url: str, channel_url: str, ca: Path, token: str, device: DeviceCredential
) -> list[float]:
    """Commands asked for on `admin_url`, received on a channel held by `channel_url`."""
    ws_url = channel_url.replace("https://", "wss://") + CHANNEL_PATH
    latencies = []
    async with (
        websockets.connect(ws_url, ssl=device.ssl_context(ca)) as channel,
        httpx.AsyncClient(
            base_url=admin_url,
            verify=str(ca),
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        ) as http,
    ):
        await asyncio.sleep(0.5)  # the channel's pending commands (none) went out
        for _ in range(COMMANDS):
            started = time.perf_counter()
            answer = await http.post(
                f"/v1/devices/{device.device_id}/actions",
                json={"action": "log_level", "level": "debug"},
            )
            if answer.status_code >= 300:
                raise RuntimeError(f"command: {answer.status_code} {answer.text}")
            message = json.loads(await asyncio.wait_for(channel.recv(), 10))
            latencies.append(time.perf_counter() - started)
            ack = Ack(command_id=message["command_id"], result={"ok": True})
            await channel.send(json.dumps(ack.encode()))
            await asyncio.sleep(0.02)
    return latencies


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


@dataclass
class Figures:
    rate: float  # telemetry requests per second
    cross: list[float] = field(default_factory=list)  # command latencies, channel elsewhere
    same: list[float] = field(default_factory=list)  # command latencies, channel on the same one


def _measure(home: Path, replicas: int) -> Figures:
    with balanced_region(home, replicas) as region:
        admin, devices = _enroll(region, home, DEVICES)
        admin.close()
        url = region.stack.endpoint("dm", region.region).url
        figures = Figures(uvloop.run(_telemetry_rate(url, region.ca_file, devices)))
        if replicas > 1:
            admin, (probe,) = _enroll(region, home / "probe", 1, prefix="02")
            token = str(admin.http.headers["authorization"]).removeprefix("Bearer ")
            admin.close()
            a, b = region.replicas[0], region.replicas[1]
            figures.cross = uvloop.run(
                _command_latencies(a.url, b.url, region.ca_file, token, probe)
            )
            figures.same = uvloop.run(
                _command_latencies(a.url, a.url, region.ca_file, token, probe)
            )
    return figures


def main() -> None:
    missing = postgres_missing() or haproxy_missing()
    if missing:
        print(f"skipped: {missing}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        one = _measure(Path(tmp) / "one", 1)
        three = _measure(Path(tmp) / "three", 3)
    print(f"devices (keep-alive mTLS connections through HAProxy): {DEVICES}")
    print(f"telemetry, 1 replica behind HAProxy : {one.rate:8.0f} req/s")
    print(f"telemetry, 3 replicas behind HAProxy: {three.rate:8.0f} req/s")
    for label, values in (("another replica", three.cross), ("the same replica", three.same)):
        print(
            f"command, channel on {label:16}: p50 {_p(values, 50):6.1f} ms"
            f"   p99 {_p(values, 99):6.1f} ms  ({len(values)} commands)"
        )
    print(
        f"RESULT ratio telemetry 3 replicas/1 replica = {three.rate / one.rate:.2f} (goal >= 0.8); "
        f"cross-replica command p99 = {_p(three.cross, 99):.1f} ms (goal < 250 ms)"
    )


if __name__ == "__main__":
    main()
