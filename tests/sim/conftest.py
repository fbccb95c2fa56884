"""Small versions of the shipped simulation scenarios, for fast tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.scenario import SimScenario, parse_sim_scenario, read_data, with_overrides

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def small(name: str, **overrides: Any) -> SimScenario:
    return parse_sim_scenario(with_overrides(read_data(SCENARIOS / f"{name}.yaml"), overrides))


@pytest.fixture
def small_scenario() -> Any:
    return small
