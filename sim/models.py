"""The scenario kinds and the function that runs each."""

from __future__ import annotations

from collections.abc import Callable

from sim.calls import run_calls
from sim.enrollment import run_enrollment
from sim.operations import run_operations
from sim.result import Progress, SimResult
from sim.retention import run_retention
from sim.rollout import run_rollout
from sim.scenario import SimScenario

Runner = Callable[[SimScenario, int | None, Progress | None], SimResult]

RUNNERS: dict[str, Runner] = {
    "enrollment_storm": run_enrollment,
    "staged_rollout": run_rollout,
    "call_load": run_calls,
    "failover": run_calls,
    "retention_volume": run_retention,
    "fleet_operations": run_operations,
}


def run_model(
    scenario: SimScenario, seed: int | None = None, progress: Progress | None = None
) -> SimResult:
    return RUNNERS[scenario.sim.kind](scenario, seed, progress)
