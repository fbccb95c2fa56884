"""`roomtrust up --replicas N`: each DM region as N processes behind one HAProxy, on PostgreSQL.

- Without PostgreSQL `up` refuses, saying why (none given, or SQLite given).
- With it, stack.json makes each DM region's endpoint its balancer and lists the replicas; the
  region answers through the balancer with the shared CA; `status` lists every replica (pid,
  port, health) and the balancer's view of each; `down` stops every process it started.
- With the meeting regions as replicas too (one stack: DM x3, meeting x2), stack.json lists the
  meeting replicas, their balancers, the relays (registered in the region's schema), the PSTN and
  interop gateways and the NATS server (no JetStream); `status` shows each healthy; the compliance
  run of the DM and meeting claims passes against that stack, and every replica of the busiest
  regions served connections through its balancer during the run (a run bypassing the balancer
  fails that check: its negative control); `down` stops every process, replacement relays too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from protocol.regions import DM_REGIONS, MEETING_REGIONS
from protocol.stack import Stack, read_stack
from roomtrust.cli import app
from roomtrust.comply.runner import run_comply
from roomtrust.comply.targets import LocalTarget
from roomtrust.container_host import fresh_database, postgres_missing
from roomtrust.harness.stores import database_url, region_engine
from roomtrust.stack import cli as stack_cli
from roomtrust.stack import launcher
from roomtrust.stack.balancer import haproxy_missing, server_states
from roomtrust.stack.meeting_region import nats_missing


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


# -- meeting regions as replicas too: one stack, DM regions x3, meeting regions x2 ---------------

DM_COUNT, MEETING_COUNT = 3, 2
DM_CLAIMS = ("DM-01", "DM-02", "DM-04", "DM-05", "DM-09", "DM-10", "DM-11", "DM-13")
MEETING_CLAIMS = (
    *("MT-01", "MT-02", "MT-03", "MT-06", "MT-08", "MT-09", "MT-10", "MT-11"),
    *(f"MT-{n}" for n in range(13, 21)),
)
REPLICATED_STACK_MARKS = (
    # 17 replicas with their relays and gateways, and the compliance run's own connections, take
    # most of a server's 100; the session's other stores would push them over
    pytest.mark.own_session,
    pytest.mark.skipif(
        database_url() is None,
        reason="a stack of 17 region replicas, 7 balancers and NATS: this runs in the "
        "PostgreSQL pass (ROOMTRUST_DATABASE_URL=postgresql+psycopg://...)",
    ),
    pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing())),
    pytest.mark.skipif(bool(haproxy_missing()), reason=str(haproxy_missing())),
    pytest.mark.skipif(bool(nats_missing()), reason=str(nats_missing())),
)


def needs_replicated_stack(test: Callable[..., None]) -> Callable[..., None]:
    for mark in REPLICATED_STACK_MARKS:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def replicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module: every DM region as 3 replicas, every meeting region as 2, on a
    fresh PostgreSQL database; stopped at the end (the last test stops it itself and checks)."""
    home = tmp_path_factory.mktemp("replicated-stack")
    with fresh_database() as database:
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        counts = {"dm": DM_COUNT, "meeting": MEETING_COUNT}
        launcher.start(home, pstn=True, relays=2, replicas=counts, database_url=url)
        try:
            yield read_stack(home)
        finally:
            launcher.stop(home)


def every_pid(stack: Stack) -> dict[str, int]:
    """Every process the stack started, by a name that says what it is."""
    pids = {f"balancer {b.service}/{b.region}": b.pid for b in stack.all_balancers()}
    pids |= {f"replica {r.service}/{r.region}/{r.name}": r.pid for r in stack.all_replicas()}
    pids |= {f"relay {n}/{r}": x.pid for n, rs in stack.relays.items() for r, x in rs.items()}
    pids |= {f"pstn {r}": g.pid for r, g in stack.pstn.items()}
    pids |= {f"interop {r}": g.pid for r, g in stack.interop.items()}
    if stack.bus is not None:
        pids["nats"] = stack.bus.pid
    return pids


@needs_replicated_stack
def test_meeting_replicas_are_listed_and_healthy(
    replicated_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = replicated_stack
    monkeypatch.setattr(stack_cli.console, "width", 250)
    assert stack.bus is not None and stack.bus.url.startswith("nats://127.0.0.1:")
    for region in MEETING_REGIONS:
        endpoint = stack.endpoint("meeting", region)
        balancer = stack.balancers["meeting"][region]
        assert endpoint.url == balancer.url
        assert [r.name for r in stack.replicas_of("meeting", region)] == ["r1", "r2"]
        assert sorted(stack.relays[region]) == ["relay-1", "relay-2"]
        assert region in stack.pstn and region in stack.interop
        with httpx.Client(verify=str(endpoint.ca_file), timeout=10) as http:
            assert http.get(f"{endpoint.url}/healthz").json()["region"] == region
        # the relays registered in the region's own schema, which the replicas read
        engine = region_engine(stack, "meeting", region)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT name, pid FROM relays WHERE NOT lost"))
                registered = {str(name): int(pid) for name, pid in rows}
        finally:
            engine.dispose()
        assert registered == {n: r.pid for n, r in stack.relays[region].items()}
    # the NATS server runs without JetStream: nothing it carries can be stored
    assert "-js" not in Path(f"/proc/{stack.bus.pid}/cmdline").read_text().split("\0")
    pids = every_pid(stack)
    assert len(pids) == 1 + 7 + 3 * DM_COUNT + 4 * MEETING_COUNT + 4 * 2 + 4 + 4
    assert all(_alive(pid) for pid in pids.values())
    status = CliRunner().invoke(app, ["status", "--home", str(stack.home)])
    assert status.exit_code == 0, status.output
    for name, pid in pids.items():
        assert str(pid) in status.output, name
    assert status.output.count("r1 UP, r2 UP, r3 UP") == len(DM_REGIONS)
    assert status.output.count("r1 UP, r2 UP") == len(DM_REGIONS) + len(MEETING_REGIONS)
    assert "DOWN" not in status.output


def haproxy_sessions(stack: Stack) -> dict[str, dict[str, int]]:
    """Connections each replica got through its region's balancer so far (`show stat` stot)."""
    return {
        f"{b.service}/{b.region}": {
            name: int(row["stot"] or 0) for name, row in server_states(Path(b.stats_socket)).items()
        }
        for b in stack.all_balancers()
    }


def replicas_served(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], regions: list[str]
) -> dict[str, dict[str, int]]:
    """The connections each replica of the named regions got between two readings; an
    AssertionError names a region the balancer did not spread over all its replicas."""
    served = {
        region: {name: after[region][name] - before[region].get(name, 0) for name in after[region]}
        for region in regions
    }
    idle = {region: [n for n, c in counts.items() if c <= 0] for region, counts in served.items()}
    assert not any(idle.values()), f"replicas that served nothing through the balancer: {idle}"
    return served


COMPLY_TAGS = " or ".join((*DM_CLAIMS, *MEETING_CLAIMS))
# the regions most scenarios talk to: they must be among the busy ones
EXERCISED = {"dm/us", "meeting/sa"}
BUSY = 10  # connections through a region's balancer during the run that make it a busy region


@needs_replicated_stack
def test_comply_passes_on_the_replicas_and_uses_every_one(
    replicated_stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = replicated_stack
    # the steps that read a region's store or search it find the stack's database
    monkeypatch.setenv("ROOMTRUST_DATABASE_URL", stack.database_url)
    monkeypatch.setenv("ROOMTRUST_SCHEMA_PREFIX", stack.schema_prefix)
    before = haproxy_sessions(stack)
    started = time.monotonic()
    run = run_comply([LocalTarget(stack.home)], out=tmp_path / "compliance", tags=COMPLY_TAGS)
    took = time.monotonic() - started
    verdicts = {v.id: v for v in run.verdicts}
    after = haproxy_sessions(stack)
    print(f"comply on the replicas: {run.counts} in {took:.0f} s")
    failing = {
        claim: (verdicts[claim].verdict, verdicts[claim].reasons[:1])
        for claim in (*DM_CLAIMS, *MEETING_CLAIMS)
        if verdicts[claim].verdict != "PASS"
    }
    assert not failing, f"claims not passing on the replicated stack: {failing}"
    through = {r: sum(after[r].values()) - sum(before[r].values()) for r in after}
    print(f"connections through each balancer during the run: {through}")
    busy = sorted(region for region, count in through.items() if count >= BUSY)
    assert set(busy) >= EXERCISED, f"the run did not go through the balancers: {through}"
    served = replicas_served(before, after, busy)
    print(f"connections per replica during the run: {served}")
    # the run reached the regions only through their balancers: the stack is the one it used
    assert all(_alive(pid) for pid in every_pid(stack).values())


@needs_replicated_stack
def test_a_run_that_bypasses_the_balancer_is_caught(replicated_stack: Stack) -> None:
    """Negative control of the check above: traffic straight to one replica leaves the
    balancer's counters of the others unchanged, and the check says so."""
    stack = replicated_stack
    before = haproxy_sessions(stack)
    replica = stack.replicas_of("meeting", "na")[0]
    ca_file = stack.endpoint("meeting", "na").ca_file
    with httpx.Client(verify=str(ca_file), timeout=10) as http:
        for _ in range(5):
            assert http.get(f"{replica.url}/healthz").status_code == 200
    with pytest.raises(AssertionError, match="served nothing through the balancer"):
        replicas_served(before, haproxy_sessions(stack), ["meeting/na"])


@needs_replicated_stack
def test_down_stops_every_process_of_the_replicated_stack(replicated_stack: Stack) -> None:
    stack = replicated_stack
    pids = every_pid(stack)
    running = sum(_alive(pid) for pid in pids.values())  # the run may have killed a relay
    replacement_relays = [
        pid
        for ready in stack.home.glob("meeting/*/relays/*/ready.json")
        if _alive(pid := int(json.loads(ready.read_text())["pid"])) and pid not in pids.values()
    ]
    down = CliRunner().invoke(app, ["down", "--home", str(stack.home)])
    assert down.exit_code == 0, down.output
    living = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert not living, f"still running after down: {living}"
    assert not any(_alive(pid) for pid in replacement_relays)
    assert f"stopped {running + len(replacement_relays)} process(es)" in down.output
    assert not (stack.home / "stack.json").exists()
