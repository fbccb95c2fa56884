"""The client bench, in its own gevent process: how many request events the custom client fires
per second in one process against a no-op target (`load.client.noop`).

    python -m load.client.bench [--rounds 5] [--seconds 1] [--devices 200] [--json FILE]

Devices (the real DeviceAgent and driver) enroll, then heartbeat and telemetry ticks go round them
in one greenlet for the given time. Every request fires `events.request` on a Locust environment
whose local runner keeps Locust's own statistics, exactly as in a load run; the event rate is
Locust's request count over the elapsed time. The same loop is then timed with a listener that only
counts, which is the client's own cost without Locust's statistics. Each figure is the best of
several rounds, by wall-clock time and by this process's CPU time (on a shared machine the CPU
time is what the client itself costs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from locust import User, task
from locust.env import Environment

from devices_virtual.agent import AgentConfig, DeviceAgent, DeviceIdentity
from devices_virtual.models import CATALOGUE, get_model
from load.client.driver import DeviceDriver, Fire
from load.client.noop import NoopNetwork


class _Idle(User):
    @task
    def nothing(self) -> None:  # never run: the environment only needs a user class
        return None


def devices(count: int, fire: Fire, network: NoopNetwork) -> list[DeviceDriver]:
    models = list(CATALOGUE)
    out = []
    for index in range(count):
        mac = f"02:00:00:00:{index >> 8 & 255:02x}:{index & 255:02x}"
        identity = DeviceIdentity(
            mac, f"B{index:06d}", get_model(models[index % len(models)]), f"bench {index}", "csr"
        )
        config = AgentConfig(dm_url="https://dm.bench", boot_seconds=0, connectivity_checks=False)
        driver = DeviceDriver(
            DeviceAgent(identity, config),
            network,
            fire,
            paced=frozenset({"boot", "heartbeat", "telemetry"}),
        )
        driver.power_on()
        driver.tick("boot")
        out.append(driver)
    return out


def drive(drivers: list[DeviceDriver], seconds: float) -> tuple[int, float, float]:
    """Tick heartbeat and telemetry (1:3) round the devices until `seconds` have passed; returns
    the ticks, the elapsed wall-clock time and the CPU time this process used meanwhile."""
    ticks = 0
    order = ("heartbeat", "telemetry", "telemetry", "telemetry")
    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + seconds
    while True:
        for driver in drivers:
            driver.tick(order[ticks & 3])
            ticks += 1
        if time.perf_counter() >= deadline:
            return ticks, time.perf_counter() - started, time.process_time() - cpu


def reference_ms() -> float:
    """CPU milliseconds this machine takes to sum 10^7 integers (a yardstick for the figures)."""
    best = float("inf")
    for _ in range(3):
        cpu = time.process_time()
        sum(range(10**7))
        best = min(best, time.process_time() - cpu)
    return round(best * 1000.0, 1)


def _rounds(
    drivers: list[DeviceDriver], env: Environment, rounds: int, seconds: float
) -> list[dict[str, float]]:
    out = []
    env.stats.reset_all()
    for _ in range(rounds):
        before = env.stats.total.num_requests
        _ticks, elapsed, cpu = drive(drivers, seconds)
        events = env.stats.total.num_requests - before
        out.append({"events": events, "wall_s": elapsed, "cpu_s": cpu})
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    env = Environment(user_classes=[_Idle])
    env.create_local_runner()  # its listener keeps Locust's statistics of every request event
    network = NoopNetwork()
    drivers = devices(args.devices, env.events.request.fire, network)
    enrolled = env.stats.total.num_requests
    sent_before = network.requests
    with_stats = _rounds(drivers, env, args.rounds, args.seconds)
    names = {
        f"{e.method} {e.name}": e.num_requests for e in env.stats.entries.values() if e.num_requests
    }
    failures = env.stats.total.num_failures
    events_all = sum(r["events"] for r in with_stats)
    sent = network.requests - sent_before

    # the same loop with a listener that only counts: the client's own cost
    counted = [0]

    def count(**_kw: Any) -> None:
        counted[0] += 1

    for driver in drivers:
        driver.fire = count
    bare = []
    for _ in range(args.rounds):
        counted[0] = 0
        _ticks, elapsed, cpu = drive(drivers, args.seconds)
        bare.append({"events": counted[0], "wall_s": elapsed, "cpu_s": cpu})

    def best(rows: list[dict[str, float]], key: str) -> int:
        return round(max(r["events"] / r[key] for r in rows))

    result = {
        "devices": args.devices,
        "rounds": args.rounds,
        "round_s": args.seconds,
        "events": events_all,
        "requests_sent": sent,
        "failures": failures,
        "names": names,
        "enroll_events": enrolled,
        "events_per_s": best(with_stats, "wall_s"),
        "events_per_cpu_s": best(with_stats, "cpu_s"),
        "client_only_events_per_s": best(bare, "wall_s"),
        "client_only_events_per_cpu_s": best(bare, "cpu_s"),
        "reference_sum_1e7_cpu_ms": reference_ms(),
        "rounds_detail": with_stats,
    }
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
