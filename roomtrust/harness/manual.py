"""A DM region served in this process (real TLS, real store, its own retention loop) on a clock
the caller moves: for tests and features that must see time pass (certificate renewal, retention).

The clock starts at the real time: the certificates the region issues are dated by it and TLS
checks them against the real time, so enroll devices before moving the clock ahead (or start it
in the past)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from protocol.stack import Endpoint, Stack
from services.common.clock import ManualClock, utcnow
from services.common.runtime import RegionRuntime, open_region, server_files
from services.common.server import bind_socket, make_server
from services.common.settings import load_settings
from services.common.tls import server_context
from services.dm.api.app import build_app
from services.dm.main import MIGRATIONS
from services.dm.store.models import TelemetryReading


@dataclass
class ManualRegion:
    """A DM region served in this process (real TLS, real store) whose clock the caller moves."""

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

    def telemetry_count(self, device_id: str) -> int:
        """How many telemetry readings of the device the region's store holds."""
        with self.runtime.sessions() as session:
            count = session.scalar(
                select(func.count()).where(TelemetryReading.device_id == device_id)
            )
        return int(count or 0)

    def wait_for_sweeps(self, sweeps: int = 5) -> None:
        """Let the retention loop run `sweeps` times at the clock's present time."""
        time.sleep(sweeps * self.runtime.settings.retention_interval_seconds)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        return self.clock.advance(delta)


@contextmanager
def manual_dm_region(home: Path, **settings: Any) -> Iterator[ManualRegion]:
    """A DM region on 127.0.0.1 (dynamic port) with a ManualClock and a 0.2 s retention sweep
    (`settings` override any setting). On PostgreSQL (ROOMTRUST_DATABASE_URL) it keeps its data
    in a schema of its own (under the run's ROOMTRUST_SCHEMA_PREFIX)."""
    clock = ManualClock(utcnow().replace(microsecond=0))
    loaded = load_settings(**{"retention_interval_seconds": 0.2, **settings})
    region = f"c{secrets.token_hex(3)}"
    runtime = open_region("dm", region, home, MIGRATIONS, settings=loaded, clock=clock)
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
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the manual DM region did not start")
        time.sleep(0.02)
    port = sock.getsockname()[1]
    try:
        yield ManualRegion(f"https://127.0.0.1:{port}", runtime.ca_file, clock, runtime, home)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        runtime.engine.dispose()
