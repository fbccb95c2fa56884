"""Fixtures for DM tests: an administrator with a site in region us, device makers, and a DM
region served in the test process with a clock the test moves (`manual_region`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from protocol.stack import Endpoint, Stack
from roomtrust.harness.stores import database_url
from services.common.clock import ManualClock, utcnow
from services.common.db import make_engine, migrate, session_factory, sqlite_url
from services.common.runtime import RegionRuntime, open_region, server_files
from services.common.server import bind_socket, make_server
from services.common.settings import load_settings
from services.common.tls import server_context
from services.dm.api.app import build_app
from services.dm.client import DeviceCredential, DmAdmin
from services.dm.main import MIGRATIONS

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


@dataclass
class ManualRegion:
    """A DM region served in this process (real TLS, real store) whose clock the test moves."""

    url: str
    ca_file: Path
    clock: ManualClock
    runtime: RegionRuntime
    home: Path

    def stack(self) -> Stack:
        """A stack description that puts this region where the fleet driver looks for `us`."""
        stack = Stack(self.home)
        stack.add(Endpoint("dm", "us", self.url, self.ca_file, pid=os.getpid()))
        return stack


@pytest.fixture
def manual_settings() -> dict[str, object]:
    """Settings of `manual_region` beside its fast retention sweep (a module may override it)."""
    return {}


@pytest.fixture
def manual_region(
    tmp_path: Path, schema_prefix: str, manual_settings: dict[str, object]
) -> Iterator[ManualRegion]:
    """A DM region on 127.0.0.1 (dynamic port) with a ManualClock and a 0.2 s retention sweep.
    On PostgreSQL it keeps its data in a schema of its own (dropped with the run's prefix).

    The clock starts at the real time: the certificates the region issues are dated by it, and
    TLS checks them against the real time, so enroll devices before moving the clock ahead."""
    clock = ManualClock(utcnow().replace(microsecond=0))
    settings = load_settings(**{"retention_interval_seconds": 0.2, **manual_settings})
    region = f"c{secrets.token_hex(3)}"
    runtime = open_region("dm", region, tmp_path, MIGRATIONS, settings=settings, clock=clock)
    cert_file, key_file = server_files(runtime)
    ctx = server_context(cert_file, key_file, client_ca_file=runtime.ca_file)
    sock = bind_socket("127.0.0.1", 0)
    server = make_server(build_app(runtime), ctx)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="manual-region", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the region did not start"
        time.sleep(0.02)
    port = sock.getsockname()[1]
    try:
        yield ManualRegion(f"https://127.0.0.1:{port}", runtime.ca_file, clock, runtime, tmp_path)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        runtime.engine.dispose()


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
