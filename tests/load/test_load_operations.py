"""`roomtrust load scenarios/load-fleet-operations.yaml` against live DM region us: Locust users each
run the real device agent; the operator user pushes the configuration profile and then asks for a
renewal wave. The run's report (operations.json, from the DM service's own records) counts the
devices' acknowledgements of the push and the renewed certificates in use, and the database of the
region agrees. The negative control: the same fleet with nothing scheduled reports zero of each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from load.scenario import load_load_scenario
from protocol.stack import Stack
from roomtrust.harness.stores import region_engine
from services.dm.store.models import Administrator, Device, DeviceCommand, OperationLogEntry

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "load-fleet-operations.yaml"
USERS = 9  # one operator, eight devices
DEVICES = USERS - 1


def _run(stack: Stack, scenario: Path, out: Path, seconds: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "load", str(scenario), "--users", str(USERS),
        "--time", f"{seconds}s", "--home", str(stack.home), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    run_dir = out / load_load_scenario(scenario).name
    report = run_dir / "operations.json"
    return {
        "code": done.returncode,
        "output": done.stdout + done.stderr,
        "report": json.loads(report.read_text()) if report.exists() else None,
        "stats": json.loads((run_dir / "stats.json").read_text())
        if (run_dir / "stats.json").exists()
        else [],
    }


def _requests(stats: list[dict[str, Any]], method: str, name: str) -> int:
    return sum(int(r["num_requests"]) for r in stats if r["method"] == method and r["name"] == name)


def _database_counts(stack: Stack, email: str) -> dict[str, int]:
    """Straight from the region's tables: applied config acknowledgements and renewed
    certificates in use, for the run's enterprise."""
    engine = region_engine(stack, "dm", "us")
    try:
        with Session(engine) as db:
            enterprise = db.scalars(
                sa.select(Administrator.enterprise_id).where(Administrator.email == email)
            ).one()
            acks = db.scalars(
                sa.select(DeviceCommand.result)
                .join(Device, Device.id == DeviceCommand.device_id)
                .where(
                    Device.enterprise_id == enterprise,
                    DeviceCommand.kind == "config",
                    DeviceCommand.acked_at.is_not(None),
                )
            ).all()
            revoked = db.scalars(
                sa.select(OperationLogEntry.detail).where(
                    OperationLogEntry.enterprise_id == enterprise,
                    OperationLogEntry.action == "device.certificate_revoke",
                )
            ).all()
    finally:
        engine.dispose()
    return {
        "applied": sum(1 for r in acks if r and r.get("applied") is True),
        "renewed_in_use": sum(1 for d in revoked if "replaced by its renewal" in d),
    }


@pytest.mark.slow
def test_the_agents_carry_out_the_push_and_the_renewal_wave(
    load_stack: Stack, tmp_path: Path
) -> None:
    run = _run(load_stack, SCENARIO, tmp_path / "out", 14)
    assert run["code"] == 0, run["output"]
    report = run["report"]
    assert report is not None and report["complete"], run["output"]
    totals = report["totals"]
    assert totals["push_devices"] == DEVICES
    assert totals["push_acknowledged"] == totals["push_applied"] == DEVICES
    assert totals["push_refused"] == 0
    assert totals["renew_requested"] == totals["renew_acknowledged"] == DEVICES
    assert totals["certificates_renewed"] == totals["renewed_in_use"] == DEVICES
    assert "config push: 8 devices targeted, 8 acknowledged (8 applied" in run["output"]
    assert "8 certificates renewed, 8 in use" in run["output"]
    stats = run["stats"]
    assert _requests(stats, "HTTP", "admin push config") == 1
    assert _requests(stats, "HTTP", "admin renewal wave") == 1
    assert _requests(stats, "HTTP", "dm renew") == DEVICES  # each agent, over mutual TLS
    email = _operator_email(load_stack, run["output"])
    assert _database_counts(load_stack, email) == {"applied": DEVICES, "renewed_in_use": DEVICES}


def _operator_email(stack: Stack, output: str) -> str:
    files = sorted((stack.home / "load").glob("load-fleet-operations-??????.json"))
    assert files, output
    provision = json.loads(files[-1].read_text())
    return str(provision["targets"]["rooms"]["dm"]["admin"]["email"])


@pytest.mark.slow
def test_with_nothing_scheduled_the_report_counts_nothing(
    load_stack: Stack, tmp_path: Path
) -> None:
    data = yaml.safe_load(SCENARIO.read_text())
    data["name"] = "load-fleet-operations-control"
    data["load"]["operations"] = {"push_config_at_s": None, "renew_at_s": None}
    data["load"]["thresholds"]["endpoints"] = {}  # no push, no renewal: none of those requests
    scenario = tmp_path / "control.yaml"
    scenario.write_text(yaml.safe_dump(data))
    run = _run(load_stack, scenario, tmp_path / "out", 6)
    assert run["code"] == 0, run["output"]
    totals = run["report"]["totals"]
    assert set(totals.values()) == {0}, totals
    assert "config push: 0 devices targeted, 0 acknowledged" in run["output"]
