"""The Locust client's event rate: request events per second that the custom client (the real
DeviceAgent and the load driver) fires in one process against a no-op target, with Locust's own
statistics listening. Goal: >= 100,000 events/s.

The measurement runs in its own process (`python -m load.client.bench`): importing Locust
monkey-patches the standard library with gevent, which the other benchmarks of this run must not
inherit (locust #2250). The request names are printed too: they group by endpoint kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 100_000


def main() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "load.client.bench", "--rounds", "5", "--seconds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    print(f"devices: {result['devices']}, {result['rounds']} rounds of {result['round_s']:g}s")
    print(f"request names: {', '.join(f'{n} ({c})' for n, c in result['names'].items())}")
    print(
        f"events: {result['events']:,} for {result['requests_sent']:,} requests sent, "
        f"failures: {result['failures']}"
    )
    print(
        f"with Locust's statistics: {result['events_per_s']:>9,} events/s wall, "
        f"{result['events_per_cpu_s']:>9,} per CPU second"
    )
    print(
        f"client only (counting)  : {result['client_only_events_per_s']:>9,} events/s wall, "
        f"{result['client_only_events_per_cpu_s']:>9,} per CPU second"
    )
    print(
        f"yardstick: summing 10^7 integers takes {result['reference_sum_1e7_cpu_ms']} CPU ms here"
    )
    rate = result["events_per_cpu_s"]
    print(
        f"RESULT {rate:,} events per CPU second with Locust's statistics "
        f"(goal >= {GOAL:,}): {'met' if rate >= GOAL else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
