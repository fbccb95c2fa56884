"""What a service region process is given at start: its region, state directory, CA, store and clock.

Both services start through `run_region()`: it makes (or loads) the region CA and server certificate,
opens and migrates the store, builds the app, binds 127.0.0.1 on a dynamic port and writes
`ready.json` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common.ca import RegionCA
from services.common.clock import Clock, OffsetClock
from services.common.db import make_engine, migrate, session_factory, store_location
from services.common.server import bind_socket, serve
from services.common.settings import Settings, load_settings
from services.common.tls import server_context


@dataclass
class RegionRuntime:
    service: str
    region: str
    directory: Path
    settings: Settings
    ca: RegionCA
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca" / "ca.pem"


def region_directory(home: Path, service: str, region: str) -> Path:
    return home / service / region


def open_region(
    service: str,
    region: str,
    home: Path,
    migrations: Path,
    settings: Settings | None = None,
    clock: Clock | None = None,
) -> RegionRuntime:
    settings = settings or load_settings()
    directory = region_directory(home, service, region)
    directory.mkdir(parents=True, exist_ok=True)
    ca = RegionCA.load_or_create(directory / "ca", f"{service}-{region}")
    url, schema = store_location(
        settings.database_url, home, service, region, os.environ.get("ROOMTRUST_SCHEMA_PREFIX", "")
    )
    engine = make_engine(url, schema)
    migrate(engine, migrations)
    return RegionRuntime(
        service,
        region,
        directory,
        settings,
        ca,
        engine,
        session_factory(engine),
        clock or OffsetClock(),
    )


def server_files(runtime: RegionRuntime) -> tuple[Path, Path]:
    return runtime.ca.write_server_files(runtime.directory, ["127.0.0.1", "localhost"])


def run_region(
    service: str,
    migrations: Path,
    build_app: Callable[[RegionRuntime], Any],
    argv: list[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"services.{service}.main")
    parser.add_argument("--region", required=True)
    parser.add_argument("--home", type=Path, default=Path(".roomtrust"))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    runtime = open_region(service, args.region, args.home.resolve(), migrations)
    cert_file, key_file = server_files(runtime)
    ctx = server_context(
        cert_file,
        key_file,
        client_ca_file=runtime.ca_file,
        minimum=runtime.settings.tls_min_version,
    )
    app = build_app(runtime)
    sock = bind_socket(runtime.settings.host, args.port)
    ready = runtime.directory / "ready.json"
    ready.unlink(missing_ok=True)
    # Long-lived start-up objects (app, ORM mappers, CA) never die: keep them out of every GC
    # pass, and collect the young generation less often, so request latency has no GC spikes.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    try:
        import uvloop

        uvloop.run(serve(app, ctx, sock, ready_file=ready))
    except ImportError:
        asyncio.run(serve(app, ctx, sock, ready_file=ready))
