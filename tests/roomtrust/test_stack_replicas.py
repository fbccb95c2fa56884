"""`roomtrust up --replicas N`: each DM region as N processes behind one HAProxy, on PostgreSQL.

- Without PostgreSQL `up` refuses, saying why (none given, or SQLite given).
- With it, stack.json makes each DM region's endpoint its balancer and lists the replicas; the
  region answers through the balancer with the shared CA; `status` lists every replica (pid,
  port, health) and the balancer's view of each; `down` stops every process it started.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from protocol.regions import DM_REGIONS
from protocol.stack import read_stack
from roomtrust.cli import app
from roomtrust.container_host import fresh_database, postgres_missing
from roomtrust.harness.stores import database_url
from roomtrust.stack import cli as stack_cli
from roomtrust.stack import launcher
from roomtrust.stack.balancer import haproxy_missing


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "give --database-url or ROOMTRUST_DATABASE_URL"),
        ("sqlite:///rooms.sqlite3", "replicas need PostgreSQL, not sqlite"),
    ],
)
def test_up_with_replicas_refuses_without_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None, reason: str
) -> None:
    monkeypatch.delenv("ROOMTRUST_DATABASE_URL", raising=False)
    args = ["up", "--home", str(tmp_path), "--replicas", "2"]
    result = CliRunner().invoke(app, args + (["--database-url", url] if url else []))
    assert result.exit_code == 2, result.output
    assert reason in " ".join(result.output.split())
    assert not (tmp_path / "stack.json").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(
    database_url() is None,
    reason="nine DM processes and three balancers: this runs in the PostgreSQL pass "
    "(ROOMTRUST_DATABASE_URL=postgresql+psycopg://...)",
)
@pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing()))
@pytest.mark.skipif(bool(haproxy_missing()), reason=str(haproxy_missing()))
def test_up_status_and_down_with_replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_cli.console, "width", 250)  # one line per row
    with fresh_database() as database:
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        stack = launcher.start(tmp_path, services=["dm"], replicas=3, database_url=url)
        try:
            written = read_stack(tmp_path)
            assert written.database_url == url
            for region in DM_REGIONS:
                endpoint = written.endpoint("dm", region)
                balancer = written.balancers["dm"][region]
                replicas = written.replicas_of("dm", region)
                assert endpoint.url == balancer.url and endpoint.pid == balancer.pid
                assert [r.name for r in replicas] == ["r1", "r2", "r3"]
                with httpx.Client(verify=str(endpoint.ca_file), timeout=10) as http:
                    answer = http.get(f"{endpoint.url}/healthz").json()  # the shared CA's cert
                assert answer["region"] == region
            status = CliRunner().invoke(app, ["status", "--home", str(tmp_path)])
            assert status.exit_code == 0, status.output
            for replica in written.all_replicas():
                assert str(replica.pid) in status.output and str(replica.port) in status.output
            assert status.output.count("haproxy") == len(DM_REGIONS)
            assert "r1 UP, r2 UP, r3 UP" in status.output
            pids = [b.pid for b in written.all_balancers()] + [
                r.pid for r in written.all_replicas()
            ]
            assert all(_alive(pid) for pid in pids)
        finally:
            down = CliRunner().invoke(app, ["down", "--home", str(tmp_path)])
        assert down.exit_code == 0, down.output
        assert f"stopped {len(pids)} process(es)" in down.output
        assert not any(_alive(pid) for pid in pids)
        assert stack.home == tmp_path.resolve()
