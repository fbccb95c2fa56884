"""Sweeps: 40 replications on a 2-worker Dask LocalCluster equal the serial run, seed for seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices_virtual.scenario import ScenarioError
from sim.scenario import read_data
from sim.sweep import dask_executor, parse_grid, points, run_sweep, task_seeds, write_csv

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "sim-call-load.yaml"


def _data() -> dict:
    data = read_data(SCENARIO)
    data["sim"].update(hours=0.5, start="2025-01-15T05:00:00Z", sample_every_s=600)
    return data


def test_dask_sweep_equals_the_serial_sweep(tmp_path: Path) -> None:
    grid = parse_grid(["sim.relays.asia=3,5"])
    serial = run_sweep(_data(), grid, replications=20, root_seed=9)
    with dask_executor(workers=2) as executor:
        distributed = run_sweep(_data(), grid, replications=20, root_seed=9, executor=executor)
    assert len(serial) == 40
    assert distributed == serial
    assert len({row["seed"] for row in serial}) == 40
    by_relays = {
        r: [row["blocking_asia"] for row in serial if row["sim.relays.asia"] == r] for r in (3, 5)
    }
    assert sum(by_relays[3]) > sum(by_relays[5])  # fewer relays block more
    path = write_csv(serial, tmp_path / "sweep.csv")
    assert len(path.read_text().splitlines()) == 41


def test_grid_parsing_and_seeds() -> None:
    grid = parse_grid(["sim.relays.asia=4,6", "sim.mean_call_min=20,30"])
    assert grid == {"sim.relays.asia": [4, 6], "sim.mean_call_min": [20, 30]}
    assert len(points(grid)) == 4
    assert task_seeds(3, 5) == task_seeds(3, 5) != task_seeds(4, 5)
    with pytest.raises(ScenarioError, match="KEY=V1"):
        parse_grid(["sim.relays.asia"])


def test_a_bad_grid_value_fails_before_any_work() -> None:
    with pytest.raises(ScenarioError, match="relays"):
        run_sweep(_data(), parse_grid(["sim.relays.mars=3"]), 1, 1)
