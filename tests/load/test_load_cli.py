"""`roomtrust load` against live regions: a headless distributed run (a Locust master and two
workers on 127.0.0.1) drives the real device agent through enrollment and telemetry, writes Locust's
CSV, HTML and JSON with a count per endpoint kind, passes its thresholds, and fails (non-zero exit)
when one is broken. While that load runs, an undeployed device is refused and leaves no trace."""

from __future__ import annotations

import csv
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
import yaml
from typer.testing import CliRunner

from load.cli import app, parse_duration
from protocol.stack import Stack
from roomtrust.harness.stores import region_engine
from services.dm.client import DeviceCredential, DmAdmin

ROOT = Path(__file__).resolve().parents[2]

SCENARIO: dict[str, Any] = {
    "name": "load-test-distributed",
    "seeds": [3],
    "fleets": [
        {
            "name": "lab",
            "dm_region": "us",
            "meeting_region": "na",
            "sites": [{"name": "Lab", "time_zone": "America/New_York"}],
            "models": {"MeetingBar A20": 2, "MeetingBoard 65": 1},
            "undeployed": 1,
            "users": 3,
        }
    ],
    "phases": [{"kind": "deploy"}, {"kind": "enroll"}],
    "load": {
        "users": 18,
        "spawn_rate": 18,
        "run_time_s": 10,
        "hold_s": 3,
        "stop_timeout_s": 2,
        "classes": {
            "device": {
                "weight": 1,
                "constant_throughput": 2.0,
                "tasks": {"heartbeat": 1, "telemetry": 3},
            },
            "undeployed": {"fixed_count": 1, "constant_throughput": 1.0},
            "admin": {"fixed_count": 1, "constant_throughput": 1.0},
            "moderator": {"fixed_count": 1, "constant_throughput": 0.2},
            "participant": {"fixed_count": 2, "constant_throughput": 0.5},
        },
        "thresholds": {
            "fail_ratio": 0.01,
            "p95_ms": 5000,
            "endpoints": {
                "dm telemetry": {"fail_ratio": 0.0},
                "dm enroll": {"fail_ratio": 0.0},
                "dm enroll (undeployed)": {"fail_ratio": 0.0},
            },
        },
    },
}


DEVICES = 18 - 5  # users minus the fixed counts
ADMIN_KINDS = ("list devices", "push config", "read alerts")


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(out / "stats_stats.csv", newline="") as f:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}


def _load_window(out: Path) -> tuple[float, float]:
    """When requests were being made: the first and last second of Locust's stats history."""
    with open(out / "stats_stats_history.csv", newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["Name"] == "Aggregated" and int(r["Total Request Count"]) > 0
        ]
    return float(rows[0]["Timestamp"]), float(rows[-1]["Timestamp"])


def _spawning(out: Path) -> bool:
    """The master has sent the workers their users (the load is starting)."""
    log = out / "master.log"
    return log.exists() and "Sending spawn jobs" in log.read_text()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("15s", 15), ("2m", 120), ("1m30s", 90), ("1h", 3600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


def test_a_bad_scenario_or_no_stack_exits_2(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", {**SCENARIO, "load": {"users": 1}})
    result = CliRunner().invoke(app, [str(bad), "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "load.classes" in result.output
    good = _write(tmp_path / "good.yaml", SCENARIO)
    result = CliRunner().invoke(app, ["run", str(good), "--home", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no local stack" in result.output


@pytest.fixture(scope="module")
def distributed(load_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One distributed run; meanwhile the test process tries to enroll a device nobody deployed."""
    tmp = tmp_path_factory.mktemp("load-run")
    scenario = _write(tmp / "scenario.yaml", SCENARIO)
    out = tmp / "out"
    endpoint = load_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    intruder = DeviceCredential(
        f"02:{secrets.token_hex(1)}:{secrets.token_hex(1)}:00:00:01",
        f"SN{secrets.token_hex(5).upper()}",
        "MeetingBar A30",
        tmp / "intruder",
    )
    attempts: list[dict[str, Any]] = []
    started = time.monotonic()
    with open(tmp / "cli.log", "w") as log:
        command = [
            sys.executable, "-m", "load", str(scenario), "--workers", "2",
            "--home", str(load_stack.home), "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            run_dir = out / SCENARIO["name"]
            spawning_seen: float | None = None
            while proc.poll() is None and time.monotonic() - started < 240:
                if spawning_seen is None and _spawning(run_dir):
                    spawning_seen = time.monotonic()
                # from 2 s after the users were sent out, while the 10 s of load run
                ready = spawning_seen is not None and time.monotonic() - spawning_seen > 2
                if ready and len(attempts) < 3:
                    status = intruder.enroll(url, ca).status_code
                    attempts.append({"status": status, "at": time.time()})
                time.sleep(1.0)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {
        "code": code,
        "out": out / SCENARIO["name"],
        "log": (tmp / "cli.log").read_text(),
        "attempts": attempts,
        "intruder": intruder,
        "seconds": time.monotonic() - started,
    }


@pytest.mark.slow
def test_distributed_run_counts_every_endpoint_kind(distributed: dict[str, Any]) -> None:
    out = distributed["out"]
    assert distributed["code"] == 0, distributed["log"]
    master = (out / "master.log").read_text()
    assert "2 workers connected" in master
    assert "to 2 ready workers" in master
    assert (out / "worker-1.log").exists() and (out / "worker-2.log").exists()
    rows = _rows(out)
    count = {key: int(r["Request Count"]) for key, r in rows.items()}
    # every device enrolled once, on whichever worker ran it, with its own CSR
    assert count[("HTTP", "dm enroll")] == DEVICES  # each once, with its own CSR
    assert count[("HTTP", "dm telemetry")] >= 3 * DEVICES
    assert count[("HTTP", "dm heartbeat")] >= DEVICES
    assert count[("WSS open", "dm command channel")] == DEVICES
    assert count[("HTTP", "dm enroll (undeployed)")] >= 2
    assert count[("HTTP", "admin login")] == 1
    assert sum(count.get(("HTTP", f"admin {k}"), 0) for k in ADMIN_KINDS) >= 2
    if count.get(("HTTP", "admin push config")):  # each push reaches the devices' channels
        assert count[("WSS recv", "dm command")] >= 1
    # the meeting users: logged in, and (a moderator's conference is open 3 s of the 10 s run)
    # participants joined through its lobby, admitted by the moderator
    assert count[("FLOW", "meeting log in")] == 3
    assert count[("FLOW", "meeting create")] >= 1 and count[("FLOW", "meeting lock")] >= 1
    assert count[("FLOW", "meeting join via lobby")] >= 1
    assert count[("WSS send", "meeting admit")] >= 1
    # the request names are endpoint kinds, never a URL or a device
    assert not [name for _t, name in rows if "/" in name or ":" in name]
    assert int(rows[("HTTP", "dm telemetry")]["Failure Count"]) == 0
    html = (out / "report.html").read_text()
    assert "dm telemetry" in html and "dm enroll" in html
    stats = json.loads((out / "stats.json").read_text())
    assert {e["name"] for e in stats} >= {"dm enroll", "dm telemetry", "dm heartbeat"}
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["passed"] and not verdict["broken"] and not verdict["exceptions"]
    assert "dm telemetry" in distributed["log"] and "verdict: passed" in distributed["log"]


@pytest.mark.slow
def test_undeployed_device_refused_while_load_runs(
    distributed: dict[str, Any], load_stack: Stack
) -> None:
    attempts = distributed["attempts"]
    assert attempts, "the load never started while the test was watching"
    assert all(a["status"] == 403 for a in attempts)
    # the attempts were made while Locust was making requests
    out = distributed["out"]
    first, last = _load_window(out)
    assert any(first - 1 <= a["at"] <= last + 1 for a in attempts), (first, last, attempts)
    row = _rows(out)[("HTTP", "dm enroll (undeployed)")]
    assert int(row["Request Count"]) >= 2 and int(row["Failure Count"]) == 0  # all 403, as wanted
    # nothing of the undeployed devices is stored: no row of any table names them
    provision = sorted((load_stack.home / "load").glob("load-test-distributed-*.json"))
    undeployed = json.loads(provision[-1].read_text())["identities"]["undeployed"]
    intruder: DeviceCredential = distributed["intruder"]
    needles = [intruder.mac, intruder.serial_number]
    needles += [v for d in undeployed for v in (d["mac"], d["serial_number"])]
    engine = region_engine(load_stack, "dm", "us")
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(engine).get_table_names() if t != "alembic_version"]
            assert "devices" in tables
            for table in tables:
                for row_values in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    text = " ".join(str(v) for v in row_values).lower()
                    found = [n for n in needles if n.lower() in text]
                    assert not found, f"{found} stored in {table}"
    finally:
        engine.dispose()
    endpoint = load_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    target = json.loads(provision[-1].read_text())["targets"]["lab"]["dm"]
    with DmAdmin(url, ca) as admin:
        admin.login(target["admin"]["email"], target["admin"]["password"])
        macs = {d["mac"] for d in admin.devices()}
    assert not macs & {intruder.mac, *(d["mac"] for d in undeployed)}
    assert len(macs) == DEVICES


@pytest.mark.slow
def test_broken_threshold_fails_the_distributed_run(
    load_stack: Stack, tmp_path: Path, roomtrust_load: Callable[..., Any]
) -> None:
    data = json.loads(json.dumps(SCENARIO))
    data["name"] = "load-test-threshold"
    data["load"]["classes"] = {"device": {"weight": 1, "constant_throughput": 2.0}}
    data["load"]["thresholds"] = {
        "fail_ratio": 0.5,
        "endpoints": {"dm telemetry": {"p95_ms": 0.001}},
    }
    scenario = _write(tmp_path / "scenario.yaml", data)
    done = roomtrust_load(
        str(scenario),
        "--workers", "2", "--users", "2", "--spawn-rate", "2", "--time", "5s",
        "--home", str(load_stack.home), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = json.loads((tmp_path / "out" / "load-test-threshold" / "verdict.json").read_text())
    assert not verdict["passed"]
    assert any("dm telemetry: p95" in line for line in verdict["broken"]), verdict
    assert "THRESHOLD BROKEN" in done.stdout
    assert (tmp_path / "out" / "load-test-threshold" / "stats_stats.csv").exists()
