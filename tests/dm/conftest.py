"""Fixtures for DM tests: an administrator with a site in region us, device makers, and a DM
region served in the test process with a clock the test moves (`manual_region`)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from protocol.stack import Stack
from roomtrust.harness.manual import ManualRegion, manual_dm_region
from roomtrust.harness.stores import database_url
from services.common.db import make_engine, migrate, session_factory, sqlite_url
from services.dm.client import DeviceCredential, DmAdmin
from services.dm.main import MIGRATIONS

__all__ = ["ManualRegion"]  # the tests import it from here

_counter = itertools.count(1)


def new_mac() -> str:
    raw = secrets.token_bytes(5)
    return "02:" + ":".join(f"{b:02x}" for b in raw)


@pytest.fixture
def dm_admin(live_stack: Stack) -> Iterator[DmAdmin]:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    admin = DmAdmin(url, ca)
    email = f"admin{next(_counter)}-{secrets.token_hex(3)}@example.com"
    admin.register("Example Corp", email, "correct horse battery")
    admin.login(email, "correct horse battery")
    admin.site_id = admin.create_site("HQ", "Europe/Berlin")  # type: ignore[attr-defined]
    yield admin
    admin.close()


@pytest.fixture
def make_device(tmp_path: Path) -> Callable[..., DeviceCredential]:
    def make(model: str = "MeetingBar A30", mac: str | None = None) -> DeviceCredential:
        return DeviceCredential(
            mac=mac or new_mac(),
            serial_number=f"SN{secrets.token_hex(5).upper()}",
            model=model,
            directory=tmp_path / "devices",
        )

    return make


@pytest.fixture
def enrolled_device(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> DeviceCredential:
    device = make_device()
    device.device_id = dm_admin.deploy(
        device.mac,
        device.serial_number,
        device.model,
        dm_admin.site_id,  # type: ignore[attr-defined]
    )
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    assert device.enroll(url, ca).status_code == 201
    return device


@pytest.fixture
def manual_settings() -> dict[str, object]:
    """Settings of `manual_region` beside its fast retention sweep (a module may override it)."""
    return {}


@pytest.fixture
def manual_region(
    tmp_path: Path, schema_prefix: str, manual_settings: dict[str, Any]
) -> Iterator[ManualRegion]:
    """A DM region on 127.0.0.1 (dynamic port) with a ManualClock and a 0.2 s retention sweep
    (`roomtrust.harness.manual`). On PostgreSQL it keeps its data in a schema of its own (dropped
    with the run's prefix).

    The clock starts at the real time: the certificates the region issues are dated by it, and
    TLS checks them against the real time, so enroll devices before moving the clock ahead."""
    with manual_dm_region(tmp_path, **manual_settings) as region:
        yield region


@pytest.fixture
def dm_sessions(tmp_path: Path, schema_prefix: str) -> Iterator[sessionmaker[Session]]:
    """A migrated DM store of its own: SQLite in tmp_path, or a PostgreSQL schema of its own when
    ROOMTRUST_DATABASE_URL is set (dropped at the end of the run with the run's prefix)."""
    url = database_url()
    if url:
        engine = make_engine(url, f"{schema_prefix}dm_unit_{secrets.token_hex(3)}")
    else:
        engine = make_engine(sqlite_url(tmp_path / "dm.sqlite3"))
    migrate(engine, MIGRATIONS)
    yield session_factory(engine)
    engine.dispose()
