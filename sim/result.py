"""What every model run returns: scalar metrics and time series, as one JSON-able record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

Progress = Callable[[float, float], None]  # (simulated seconds done, simulated seconds in all)


@dataclass
class SimResult:
    scenario: str
    kind: str
    seed: int
    metrics: dict[str, Any]
    series: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "kind": self.kind,
            "seed": self.seed,
            "metrics": self.metrics,
            "series": self.series,
        }


def run_until(
    env: simpy.Environment, horizon: float, progress: Progress | None, steps: int = 200
) -> None:
    """Run to `horizon` simulated seconds, reporting progress in simulated time."""
    if progress is None:
        env.run(until=horizon)
        return
    for i in range(1, steps + 1):
        env.run(until=horizon * i / steps)
        progress(env.now, horizon)


def run_while(
    env: simpy.Environment,
    horizon: float,
    busy: Callable[[], bool],
    progress: Progress | None,
    step: float,
) -> None:
    """Run in steps of `step` simulated seconds while `busy()` holds, up to `horizon`."""
    now = env.now
    while busy() and now < horizon:
        now = min(horizon, now + step)
        env.run(until=now)
        if progress is not None:
            progress(now, horizon)
