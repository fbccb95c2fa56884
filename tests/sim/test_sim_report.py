"""`roomtrust sim run`: each plot exists, has labelled axes and is not empty; summary and records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from roomtrust.cli import app
from sim.calls import blocking_curve, run_calls
from sim.enrollment import run_enrollment
from sim.report import write_outputs
from sim.retention import run_retention
from sim.rollout import run_rollout


def _check_plots(folder: Path, expected: set[str]) -> None:
    manifest = json.loads((folder / "plots.json").read_text())
    assert {p["file"] for p in manifest} == expected
    for plot in manifest:
        assert plot["title"] and plot["xlabel"] and plot["ylabel"], plot
        path = folder / plot["file"]
        assert path.stat().st_size > 5000
        pixels = mpimg.imread(path)
        assert pixels.shape[0] > 100 and float(np.std(pixels)) > 0.01  # not a blank canvas
    page = (folder / "summary.html").read_text()
    assert all(p["file"] in page for p in manifest)


def test_plots_of_every_model(small_scenario: Any, tmp_path: Path) -> None:
    fleets = [
        {
            "name": "rooms",
            "dm_region": "eu",
            "sites": [{"name": "Berlin", "time_zone": "Europe/Berlin", "location": "germany"}],
            "models": {"MeetingBar A20": 300},
        }
    ]
    storm = small_scenario(
        "sim-enrollment-storm",
        fleets=fleets,
        **{"sim.replicas": {"eu": 1}, "sim.services": {"enroll": {"servers": 1, "mean_s": 0.5}}},
    )
    folder = write_outputs(run_enrollment(storm), tmp_path)
    _check_plots(folder, {"queue_length.png", "enrolled.png"})
    assert json.loads((folder / "result.json").read_text())["kind"] == "enrollment_storm"

    rollout = small_scenario(
        "sim-staged-rollout",
        fleets=[{**fleets[0], "dm_region": "us"}],
        **{"sim.windows": [], "sim.failure_rate": 0.0},
    )
    _check_plots(write_outputs(run_rollout(rollout), tmp_path), {"rollout_progress.png"})

    calls = small_scenario("sim-call-load", **{"sim.hours": 6})
    curve = blocking_curve(calls, "asia", [2, 4, 6])
    assert curve[0]["blocking"] > curve[-1]["blocking"]
    folder = write_outputs(run_calls(calls), tmp_path, curve)
    _check_plots(folder, {"relay_occupancy.png", "blocking_vs_relays.png"})

    volume = small_scenario("sim-retention-volume", **{"sim.days": 200})
    _check_plots(write_outputs(run_retention(volume), tmp_path), {"retention_volume.png"})


def test_cli_run_writes_the_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sim", "run", "scenarios/sim-failover.yaml", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "dropped_calls: 0" in result.output
    _check_plots(tmp_path / "sim-failover", {"relay_occupancy.png"})


@pytest.mark.parametrize(
    "args",
    [
        ["sim", "run", "nope.yaml"],
        ["sim", "sweep", "scenarios/sim-failover.yaml", "--grid", "x", "--serial"],
    ],
)
def test_cli_refuses_bad_input(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert not any(tmp_path.iterdir())
