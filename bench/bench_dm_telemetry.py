"""Telemetry over mutual TLS with 200 concurrent devices against one DM region process, next to
the same server's rate on an empty TLS endpoint measured in the same run.

Two measurements:
- saturation: every device sends back to back (closed loop); the telemetry rate over the empty
  endpoint's rate is the ratio (goal >= 0.5). Latency here is only queueing (Little's law).
- latency: every device sends on its own fixed schedule (open loop), at a total of half the
  saturated telemetry rate and at one report per device per second; p99 of those is the latency
  figure (goal < 50 ms). The load generator shares the machine's two cores with the server.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from roomtrust.stack import launcher
from services.dm.client import DeviceCredential, DmAdmin

DEVICES = 200
SECONDS = 8.0


async def _hammer(
    clients: list[httpx.AsyncClient], path: str, body: dict[str, str] | None
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + SECONDS

    async def one(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            if body is None:
                response = await client.get(path)
            else:
                response = await client.post(path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text}")
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(one(c) for c in clients))
    return len(latencies) / (time.perf_counter() - began), latencies


async def _paced(
    clients: list[httpx.AsyncClient], path: str, body: dict[str, str], rate: float
) -> tuple[float, list[float]]:
    """Open loop: each client sends every len(clients)/rate seconds, phase-shifted."""
    latencies: list[float] = []
    period = len(clients) / rate
    began = time.perf_counter()
    stop_at = began + SECONDS

    async def one(index: int, client: httpx.AsyncClient) -> None:
        due = began + period * index / len(clients)
        while due < stop_at:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            started = time.perf_counter()
            response = await client.post(path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text}")
            latencies.append(time.perf_counter() - started)
            due += period

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    return len(latencies) / (time.perf_counter() - began), latencies


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def _run(url: str, ca: str, devices: list[DeviceCredential]) -> None:
    clients = [
        httpx.AsyncClient(base_url=url, verify=d.ssl_context(ca), timeout=30) for d in devices
    ]
    try:
        await _hammer(clients, "/v1/device/ping", None)  # warm-up: handshakes, pools
        base_rate, base_lat = await _hammer(clients, "/v1/device/ping", None)
        body = {"status": "online", "firmware_version": "1.0.0", "network_type": "ethernet"}
        tel_rate, tel_lat = await _hammer(clients, "/v1/device/telemetry", body)
        paced_rate, paced_lat = await _paced(clients, "/v1/device/telemetry", body, tel_rate / 2)
        each_rate, each_lat = await _paced(clients, "/v1/device/telemetry", body, len(clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    print(f"devices (concurrent mTLS connections): {DEVICES}, {SECONDS:.0f}s per phase")
    print(
        f"empty TLS endpoint : {base_rate:8.0f} req/s   p50 {_p(base_lat, 50):6.1f} ms"
        f"   p99 {_p(base_lat, 99):6.1f} ms"
    )
    print(
        f"telemetry (stored) : {tel_rate:8.0f} req/s   p50 {_p(tel_lat, 50):6.1f} ms"
        f"   p99 {_p(tel_lat, 99):6.1f} ms"
    )
    print(
        f"telemetry paced    : {paced_rate:8.0f} req/s   p50 {_p(paced_lat, 50):6.1f} ms"
        f"   p99 {_p(paced_lat, 99):6.1f} ms  (open loop at half the saturated rate)"
    )
    print(
        f"telemetry 1/s each : {each_rate:8.0f} req/s   p50 {_p(each_lat, 50):6.1f} ms"
        f"   p99 {_p(each_lat, 99):6.1f} ms  (open loop, one report per device per second)"
    )
    ratio = tel_rate / base_rate
    print(
        f"RESULT ratio telemetry/empty = {ratio:.2f} (goal >= 0.5); "
        f"paced telemetry p99 = {_p(paced_lat, 99):.1f} ms (goal < 50 ms)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        stack = launcher.start(home, services=["dm"])
        try:
            entry = stack.endpoint("dm", "us")
            url, ca = entry.url, entry.ca_file
            devices = []
            with DmAdmin(url, ca) as admin:
                admin.register("Bench Inc", "bench@example.com", "correct horse battery")
                admin.login("bench@example.com", "correct horse battery")
                site = admin.create_site("Lab", "UTC")
                for i in range(DEVICES):
                    device = DeviceCredential(
                        f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                        f"B{i}",
                        "MeetingBar A10",
                        home / "keys",
                    )
                    admin.deploy(device.mac, device.serial_number, device.model, site)
                    if device.enroll(url, ca).status_code != 201:
                        raise RuntimeError("enrollment failed")
                    devices.append(device)
            uvloop.run(_run(url, ca, devices))
        finally:
            launcher.stop(home)


if __name__ == "__main__":
    main()
