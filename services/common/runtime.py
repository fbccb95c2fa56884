"""What a service region process is given at start: its region, state directory, CA, store and clock.

Both services start through `run_region()`: it reads the settings (refusing bad or unknown ones, and
a region other than `--region`), takes the region CA from the mounted secret files the settings name
(or makes one in its state directory, the embedded default), issues the server certificate for the
public host names, opens and migrates the store, builds the app, binds the listen address and writes
`ready.json` once it accepts connections. Bad settings end it with a one-line reason and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from services.common.blobstore import BlobStore, open_blob_store
from services.common.ca import RegionCA
from services.common.clock import Clock, OffsetClock
from services.common.db import make_engine, migrate, session_factory, store_location
from services.common.errors import DomainError
from services.common.firmware import load_or_create_release_key, load_release_key
from services.common.server import bind_socket, serve
from services.common.settings import Settings, SettingsError, load_settings
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
        return self.settings.ca_cert_file or self.directory / "ca" / "ca.pem"

    def release_key(self) -> Ed25519PrivateKey:
        """The firmware release key: the mounted secret file, or one kept in the state directory."""
        path = self.settings.release_key_file
        if path is None:
            return load_or_create_release_key(self.directory / "release")
        try:
            return load_release_key(read_secret(path, "release_key_file"))
        except DomainError as exc:
            raise SettingsError(f"ROOMTRUST_RELEASE_KEY_FILE {path}: {exc}") from None

    def blob_store(self, container: str) -> BlobStore:
        """The object store of one container (firmware, diagnostics) as the settings say."""
        return open_blob_store(self.settings, self.directory / "objects", container)


def read_secret(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"ROOMTRUST_{setting.upper()} {path}: {exc.strerror}") from None


def load_ca(settings: Settings, directory: Path, name: str) -> RegionCA:
    """The region CA from the mounted secret files, else made (once) in `directory`."""
    if settings.ca_cert_file is None or settings.ca_key_file is None:
        return RegionCA.load_or_create(directory, name)
    cert = read_secret(settings.ca_cert_file, "ca_cert_file")
    key = read_secret(settings.ca_key_file, "ca_key_file")
    try:
        return RegionCA.from_pem(name, cert, key)
    except ValueError as exc:
        raise SettingsError(f"ROOMTRUST_CA_CERT_FILE/ROOMTRUST_CA_KEY_FILE: {exc}") from None


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
    ca = load_ca(settings, directory / "ca", f"{service}-{region}")
    url, schema = store_location(
        settings.database_url, home, service, region, settings.schema_prefix
    )
    engine = make_engine(url, schema, pool_size=settings.database_pool_size)
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
    """The server certificate for the public host names (ROOMTRUST_PUBLIC_HOSTS) and its key."""
    return runtime.ca.write_server_files(runtime.directory, list(runtime.settings.public_hosts))


def run_region(
    service: str,
    migrations: Path,
    build_app: Callable[[RegionRuntime], Any],
    argv: list[str] | None = None,
) -> None:
    """Start one region process; bad settings end it with exit code 2 and a one-line reason."""
    parser = argparse.ArgumentParser(prog=f"roomtrust serve {service}")
    parser.add_argument("--region", required=True)
    parser.add_argument("--home", type=Path, default=None, help="default: ROOMTRUST_HOME")
    parser.add_argument("--port", type=int, default=None, help="default: ROOMTRUST_PORT")
    args = parser.parse_args(argv)
    try:
        runtime, ctx, app, sock = _start(service, migrations, build_app, args)
    except SettingsError as exc:
        print(f"{parser.prog}: bad settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"{parser.prog}: the database cannot be used: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
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


def _start(
    service: str,
    migrations: Path,
    build_app: Callable[[RegionRuntime], Any],
    args: argparse.Namespace,
) -> tuple[RegionRuntime, ssl.SSLContext, Any, socket.socket]:
    settings = load_settings()
    if settings.region is not None and settings.region != args.region:
        raise SettingsError(
            f"ROOMTRUST_REGION is {settings.region!r} but --region is {args.region!r}"
        )
    home = args.home if args.home is not None else settings.home
    port = args.port if args.port is not None else settings.port
    runtime = open_region(service, args.region, home.resolve(), migrations, settings)
    cert_file, key_file = server_files(runtime)
    ctx = server_context(
        cert_file, key_file, client_ca_file=runtime.ca_file, minimum=settings.tls_min_version
    )
    app = build_app(runtime)
    try:
        sock = bind_socket(settings.host, port)
    except OSError as exc:
        raise SettingsError(
            f"ROOMTRUST_HOST/ROOMTRUST_PORT: cannot listen on {settings.host}:{port}: {exc.strerror}"
        ) from None
    return runtime, ctx, app, sock
