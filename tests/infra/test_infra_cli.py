"""`roomtrust infra graph|check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infra.policy.faults import FAULTS
from roomtrust.cli import app

runner = CliRunner()


def test_graph_writes_the_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    result = runner.invoke(app, ["infra", "graph", "ci-meeting-eu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    graph = json.loads(out.read_text())
    assert graph["stack"] == "ci-meeting-eu"
    assert any(r["type"] == "pulumi:providers:aws" and r["inputs"]["region"] == "eu-central-1"
               for r in graph["resources"])  # fmt: skip


def test_check_passes_a_good_stack(tmp_path: Path, stack_graphs: dict[str, Any]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(stack_graphs["ci-dm-us"]))
    result = runner.invoke(app, ["infra", "check", "ci-dm-us", "--graph", str(good), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["passed"] and len(payload["results"]) == 10
    assert all(r["selected"] > 0 for r in payload["results"])


def test_check_fails_a_broken_graph(tmp_path: Path, stack_graphs: dict[str, Any]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(FAULTS["a bucket with replication"](stack_graphs["ci-meeting-na"])))
    result = runner.invoke(app, ["infra", "check", "ci-meeting-na", "--graph", str(bad), "--json"])
    assert result.exit_code == 1
    failed = [r["claim"] for r in json.loads(result.output)["results"] if not r["passed"]]
    assert failed == ["IN-04"]


def test_unknown_stack_exits_2() -> None:
    result = runner.invoke(app, ["infra", "check", "prod-dm-mars"])
    assert result.exit_code == 2
    assert "no stack named 'prod-dm-mars'" in result.output
