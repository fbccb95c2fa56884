"""Health-alert rules evaluated with an injected clock (DM-05)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.common.clock import ManualClock
from services.common.db import make_engine, migrate, session_factory, sqlite_url, transaction
from services.dm.domain import accounts, alerts, fleet
from services.dm.main import MIGRATIONS
from services.dm.store.models import Alert, Device

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(sqlite_url(tmp_path / "dm.sqlite3"))
    migrate(engine, MIGRATIONS)
    return session_factory(engine)


def enrolled_device(store, now: dt.datetime) -> str:  # type: ignore[no-untyped-def]
    with transaction(store) as s:
        accounts.register_enterprise(
            s,
            region="us",
            name="E",
            email="a@e.example",
            password="correct horse battery",
            first_name="A",
            last_name="B",
            phone=None,
            now=now,
        )
    with transaction(store) as s:
        _token, admin_row = accounts.login(s, "a@e.example", "correct horse battery", now)
        admin = accounts.AdminIdentity(admin_row.id, admin_row.enterprise_id, admin_row.email)
        site = fleet.create_site(
            s,
            admin,
            name="HQ",
            time_zone="UTC",
            latitude=None,
            longitude=None,
            server_id=None,
            now=now,
        )
        s.flush()
        device = fleet.deploy_device(
            s,
            admin,
            mac="02:00:00:00:00:01",
            serial_number="S",
            model="MeetingBar A20",
            site_id=site.id,
            name=None,
            tags=[],
            now=now,
        )
        device.state, device.enrolled_at, device.last_seen = "enrolled", now, now
        return device.id


def test_offline_alert_is_raised_after_the_threshold_and_cleared_on_return(store) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    device_id = enrolled_device(store, clock.now())
    threshold = dt.timedelta(minutes=10)

    clock.advance(dt.timedelta(minutes=9))
    with transaction(store) as s:
        assert alerts.evaluate(s, clock.now(), threshold) == 0

    clock.advance(dt.timedelta(minutes=2))
    with transaction(store) as s:
        assert alerts.evaluate(s, clock.now(), threshold) == 1
        assert alerts.evaluate(s, clock.now(), threshold) == 0  # no duplicate while open
    with transaction(store) as s:
        alert = s.query(Alert).one()
        assert (alert.rule, alert.state, alert.severity) == ("offline", "active", "major")
        s.get(Device, device_id).last_seen = clock.now()  # type: ignore[union-attr]
    with transaction(store) as s:
        alerts.evaluate(s, clock.now(), threshold)
    with transaction(store) as s:
        assert s.query(Alert).one().state == "cleared"


def test_firmware_update_failure_is_critical(store) -> None:  # type: ignore[no-untyped-def]
    device_id = enrolled_device(store, T0)
    with transaction(store) as s:
        device = s.get(Device, device_id)
        assert device is not None
        alerts.raise_fault(s, device, "firmware_update", "boot check failed", T0)
    with transaction(store) as s:
        assert s.query(Alert).one().severity == "critical"
