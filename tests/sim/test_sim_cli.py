"""`roomtrust sim validate` and `roomtrust sim coverage`: their tables, files and exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sim import validation
from sim.cli import app

RARE = ["--servers", "150", "--loads", "0.5", "--hits", "200", "--serial"]


def test_validate_samples_the_rare_points_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "validation.csv"
    result = CliRunner().invoke(app, ["validate", *RARE, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 importance-sampled" in result.output and "2 of 2 hold -> PASS" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["model"], r["method"]) for r in rows] == [
        ("mmcc", "importance-sampling"),
        ("mmc", "importance-sampling"),
    ]
    assert all(r["contains_family"] == "True" for r in rows)


def test_validate_exits_1_when_an_interval_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = validation.exact_value
    monkeypatch.setattr(validation, "exact_value", lambda *point: 2 * exact(*point))
    result = CliRunner().invoke(app, ["validate", *RARE, "--out", str(tmp_path / "v.csv")])
    assert result.exit_code == 1 and "FAIL" in result.output and "MISS" in result.output


def test_coverage_counts_the_intervals_that_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["coverage", "mmcc", "50", "0.6", "--sets", "5", "--hits", "200", "--serial"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "importance-sampling" in result.output and "of 5 95% intervals" in result.output
    exact = validation.exact_value
    monkeypatch.setattr(validation, "exact_value", lambda *point: 2 * exact(*point))
    wrong = CliRunner().invoke(app, args)
    assert wrong.exit_code == 1 and "0 of 5" in wrong.output


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--method", "guess", "--serial"],
        ["validate", "--servers", "five", "--serial"],
        ["coverage", "mm1", "5", "0.5", "--serial"],
        ["coverage", "mmc", "5", "1.5", "--serial"],
    ],
)
def test_bad_input_is_refused_with_a_reason(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "error:" in result.output
