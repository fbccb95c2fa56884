"""Simulated device-events per second: a 100k-device fleet through 24 simulated hours (heartbeat
every 5 minutes, telemetry every 30), driven by a cohort (`sim.cohort`), next to a bare SimPy
timeout loop measured in the same run; with the peak memory the fleet needed.

Goals: >= 250k device-events/s, >= 0.25 of the bare loop's events/s, the day in <= 2 minutes,
>= 1M devices per GB.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from sim.cohort import Cohort

DEVICES = 100_000
HOURS = 24
HEARTBEAT_S, TELEMETRY_S = 300.0, 1800.0
BARE_EVENTS = 2_000_000


def bare_loop() -> float:
    """Events/s of one SimPy process doing nothing but timeouts."""
    env = simpy.Environment()

    def loop() -> Generator[simpy.Event, Any, None]:
        for _ in range(BARE_EVENTS):
            yield env.timeout(1.0)

    env.process(loop())
    started = time.perf_counter()
    env.run()
    return BARE_EVENTS / (time.perf_counter() - started)


def fleet_day(hours: float, traced: bool) -> tuple[int, float, int]:
    """(device events, wall seconds, peak traced bytes or 0) for the fleet over `hours`.

    tracemalloc slows numpy allocations, so the rate comes from an untraced run and the memory
    from a traced one.
    """
    if traced:
        tracemalloc.start()
    gc.disable()
    env = simpy.Environment()
    cohort = Cohort(env, DEVICES, HEARTBEAT_S, TELEMETRY_S, np.random.default_rng(7))
    gc.freeze()
    gc.enable()
    started = time.perf_counter()
    env.run(until=hours * 3600)
    wall = time.perf_counter() - started
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    expected = DEVICES * hours * 3600 * (1 / HEARTBEAT_S + 1 / TELEMETRY_S)
    if abs(cohort.events - expected) > 0.01 * expected:
        raise RuntimeError(f"the cohort generated {cohort.events} events, expected ~{expected:.0f}")
    return cohort.events, wall, peak


def main() -> None:
    bare = bare_loop()
    events, wall, _ = fleet_day(HOURS, traced=False)
    _, _, peak = fleet_day(2, traced=True)
    rate = events / wall
    per_gb = DEVICES / (peak / 1e9)
    print(f"bare SimPy timeout loop:        {bare:,.0f} events/s")
    print(
        f"fleet: {DEVICES:,} devices x {HOURS} simulated h: {events:,} device events in {wall:.1f} s"
    )
    print(f"device-events/s:                {rate:,.0f}  (goal >= 250,000)")
    print(f"ratio to the bare loop:         {rate / bare:.2f}  (goal >= 0.25)")
    print(f"whole day:                      {wall:.1f} s  (goal <= 120 s)")
    print(f"peak memory (traced, 2 h run):  {peak / 1e6:.1f} MB = {peak / DEVICES:.0f} B/device")
    print(f"devices per GB:                 {per_gb:,.0f}  (goal >= 1,000,000)")


if __name__ == "__main__":
    main()
