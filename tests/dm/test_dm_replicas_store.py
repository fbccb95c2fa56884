"""Writes that replicas race on, against PostgreSQL with the database slowed (issue 16).

- Two alert evaluators racing while another connection holds a lock on the alerts table raise
  exactly one active alert per offline device (the partial unique index and ON CONFLICT DO
  NOTHING); with the index dropped, the same race raises duplicates (the negative control).
- Two stores of one telemetry report id racing the same way keep one row.
- A rollout's firmware command is unique per (rollout, device, operation).

Each test uses a schema of its own, dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from roomtrust.container_host import postgres_missing
from roomtrust.harness.stores import database_url
from services.common.db import drop_schema, make_engine, migrate, session_factory, transaction
from services.dm.domain import accounts, alerts, commands, fleet, reporting
from services.dm.main import MIGRATIONS
from services.dm.store.models import Alert, Device, DeviceCommand, TelemetryReading

LOCAL = "postgresql+psycopg://root@127.0.0.1:5432/test"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
OFFLINE_AFTER = dt.timedelta(minutes=10)
HOLD_SECONDS = 0.5

pytestmark = [
    pytest.mark.database,
    pytest.mark.postgres,
    pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing())),
]


@pytest.fixture
def pg() -> Iterator[tuple[sessionmaker[Session], str, str]]:
    url = database_url() or LOCAL
    schema = f"dm_race_{secrets.token_hex(4)}"
    engine = make_engine(url, schema)
    migrate(engine, MIGRATIONS)
    try:
        yield session_factory(engine), url, schema
    finally:
        engine.dispose()
        drop_schema(url, schema)


def fleet_of(sessions: sessionmaker[Session], count: int) -> list[str]:
    """`count` enrolled devices last seen at T0."""
    with transaction(sessions) as s:
        accounts.register_enterprise(
            s,
            region="us",
            name="E",
            email="a@e.example",
            password="correct horse battery",
            first_name="A",
            last_name="B",
            phone=None,
            now=T0,
        )
    with transaction(sessions) as s:
        _token, row = accounts.login(s, "a@e.example", "correct horse battery", T0)
        admin = accounts.AdminIdentity(row.id, row.enterprise_id, row.email)
        site = fleet.create_site(
            s,
            admin,
            name="HQ",
            time_zone="UTC",
            latitude=None,
            longitude=None,
            server_id=None,
            now=T0,
        )
        s.flush()
        ids = []
        for n in range(count):
            device = fleet.deploy_device(
                s,
                admin,
                mac=f"02:00:00:00:01:{n:02x}",
                serial_number=f"S{n}",
                model="MeetingBar A20",
                site_id=site.id,
                name=None,
                tags=[],
                now=T0,
            )
            device.state, device.enrolled_at, device.last_seen = "enrolled", T0, T0
            device.cert_serial = f"{n:x}"
            ids.append(device.id)
        return ids


def race_behind_a_lock(url: str, schema: str, table: str, jobs: list[Callable[[], Any]]) -> None:
    """Run `jobs` at once while another connection holds `table` locked against writes for
    HOLD_SECONDS (a slow database), so each job reads before any of them can write."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=False) as blocker:
        blocker.execute(f'LOCK TABLE "{schema}"."{table}" IN EXCLUSIVE MODE')
        errors: list[BaseException] = []

        def run(job: Callable[[], Any]) -> None:
            try:
                job()
            except BaseException as exc:  # handed to the test below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        time.sleep(HOLD_SECONDS)
        blocker.rollback()  # the lock goes: the writers proceed together
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors


def open_alerts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with transaction(sessions) as s:
        rows = s.execute(
            select(Alert.device_id, func.count())
            .where(Alert.rule == "offline", Alert.state == "active")
            .group_by(Alert.device_id)
        )
        return {device_id: count for device_id, count in rows.tuples()}


def evaluator(sessions: sessionmaker[Session], raised: list[int]) -> Callable[[], None]:
    def evaluate() -> None:
        with transaction(sessions) as s:
            raised.append(alerts.evaluate(s, T0 + dt.timedelta(minutes=30), OFFLINE_AFTER))

    return evaluate


def test_two_evaluators_racing_on_a_slow_database_raise_one_alert_per_offline_device(
    pg: tuple[sessionmaker[Session], str, str],
) -> None:
    sessions, url, schema = pg
    ids = fleet_of(sessions, 5)
    raised: list[int] = []
    race_behind_a_lock(url, schema, "alerts", [evaluator(sessions, raised) for _ in range(2)])
    assert open_alerts(sessions) == dict.fromkeys(ids, 1)
    assert sorted(raised) == [0, 5]  # one evaluator raised them all, the other none
    # and once more, with the alerts open: nothing new
    evaluator(sessions, raised)()
    assert raised[-1] == 0 and open_alerts(sessions) == dict.fromkeys(ids, 1)


def test_without_the_unique_index_the_same_race_raises_duplicates(
    pg: tuple[sessionmaker[Session], str, str],
) -> None:
    """The negative control: the index, not the timing, keeps the alerts single."""
    sessions, url, schema = pg
    ids = fleet_of(sessions, 5)
    with transaction(sessions) as s:
        s.execute(text("DROP INDEX uq_alerts_open_condition"))
    raised: list[int] = []
    race_behind_a_lock(url, schema, "alerts", [evaluator(sessions, raised) for _ in range(2)])
    assert open_alerts(sessions) == dict.fromkeys(ids, 2)


def test_two_stores_of_one_report_id_racing_keep_one_row(
    pg: tuple[sessionmaker[Session], str, str],
) -> None:
    sessions, url, schema = pg
    (device_id,) = fleet_of(sessions, 1)
    report = {"status": "online", "firmware_version": "1.0.0", "report_id": "r-0000000001"}
    stored: list[bool] = []

    def store() -> None:
        with transaction(sessions) as s:
            device = s.get(Device, device_id)
            assert device is not None
            stored.append(reporting.store_telemetry(s, device, report, T0))

    race_behind_a_lock(url, schema, "telemetry", [store, store])
    with transaction(sessions) as s:
        rows = list(s.scalars(select(TelemetryReading)))
    assert [(r.report_id, r.fields) for r in rows] == [
        ("r-0000000001", {"status": "online", "firmware_version": "1.0.0"})
    ]
    assert sorted(stored) == [False, True]


def test_a_bad_report_id_is_refused_with_its_field(
    pg: tuple[sessionmaker[Session], str, str],
) -> None:
    sessions, _url, _schema = pg
    (device_id,) = fleet_of(sessions, 1)
    with transaction(sessions) as s:
        device = s.get(Device, device_id)
        assert device is not None
        with pytest.raises(Exception) as refused:
            reporting.store_telemetry(s, device, {"status": "online", "report_id": "x"}, T0)
    assert getattr(refused.value, "field", None) == "report_id"


def test_a_rollout_command_is_queued_once_per_rollout_device_and_operation(
    pg: tuple[sessionmaker[Session], str, str],
) -> None:
    sessions, _url, _schema = pg
    (device_id,) = fleet_of(sessions, 1)
    with transaction(sessions) as s:
        s.execute(
            text(
                "INSERT INTO firmware_images VALUES ('img', (SELECT enterprise_id FROM devices"
                " LIMIT 1), 'MeetingBar A20', '2.0.0', 1, 'x', 'k', :t)"
            ),
            {"t": T0},
        )
        s.execute(
            text(
                "INSERT INTO rollouts (id, enterprise_id, image_id, name, plan, state, created_at,"
                " updated_at) SELECT 'r1', enterprise_id, 'img', 'r', '{}', 'running', :t, :t"
                " FROM devices LIMIT 1"
            ),
            {"t": T0},
        )
    with transaction(sessions) as s:
        device = s.get(Device, device_id)
        assert device is not None
        first = commands.queue_rollout_command(s, device, "r1", "install", {"op": "install"}, T0)
        again = commands.queue_rollout_command(s, device, "r1", "install", {"op": "install"}, T0)
        back = commands.queue_rollout_command(s, device, "r1", "rollback", {"op": "rollback"}, T0)
        assert first is not None and again is None and back is not None
    with transaction(sessions) as s:
        rows = s.execute(select(DeviceCommand.rollout_id, DeviceCommand.operation)).all()
    assert sorted(tuple(r) for r in rows) == [("r1", "install"), ("r1", "rollback")]
