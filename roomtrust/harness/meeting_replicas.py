"""A replicated meeting region as real processes, for the tests and the failover benchmark.

`replicated_meeting()` makes a fresh PostgreSQL database and the region's secrets as files (CA,
relay control token), starts N signaling replicas (`roomtrust serve meeting --region na` with
ROOMTRUST_BUS_URL on the local NATS), M relays (`roomtrust serve relay`, registering in the
database) and one HAProxy in front of the replicas (`roomtrust.stack.balancer`); it stops them all
on exit, also on failure. Replicas can be killed and started again (`kill`, `start_replica`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from roomtrust.container_host import fresh_database, write_region_secrets
from roomtrust.stack.balancer import Backend, Balancer, free_port, start_balancer, stop_balancer
from services.common.db import make_engine

REGION = "na"
SCHEMA = f"meeting_{REGION}"
NATS_SERVER = "/usr/sbin/nats-server"
START_TIMEOUT = 60.0


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    home: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Nats:
    """The region's own nats-server (JetStream enabled, as a deployed one may be: the region must
    still persist nothing through it)."""

    url: str
    process: subprocess.Popen[bytes]
    store: Path
    log: Path


def nats_missing() -> str | None:
    """Why the region's nats-server cannot run here, or None."""
    if not os.access(NATS_SERVER, os.X_OK):
        return f"nats-server is not installed ({NATS_SERVER} missing; apt-get install nats-server)"
    return None


@contextmanager
def nats_server(directory: Path) -> Iterator[Nats]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    store, log = directory / "store", directory / "nats.log"
    process = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), "-l", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {log.read_text()[-500:]}")
            time.sleep(0.02)
        yield Nats(f"nats://127.0.0.1:{port}", process, store, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ReplicatedMeeting:
    home: Path
    env: dict[str, str]
    database_url: str
    ca_file: Path
    nats: Nats
    replicas: list[Proc] = field(default_factory=list)
    relays: list[Proc] = field(default_factory=list)
    balancer: Balancer | None = None
    _started: list[Proc] = field(default_factory=list)
    _count: int = 0

    @property
    def url(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    def engine(self) -> sa.Engine:
        return make_engine(self.database_url, SCHEMA)

    def start_replica(self, port: int = 0) -> Proc:
        self._count += 1
        name = f"replica-{self._count}"
        home = self.home / name
        home.mkdir(parents=True, exist_ok=True)
        ready = home / "meeting" / REGION / "ready.json"
        proc = _spawn(
            name,
            home,
            ["roomtrust", "serve", "meeting", "--region", REGION, "--port", str(port)],
            self.env,
        )
        self._started.append(proc)
        proc.port = int(_wait_ready(proc, ready)["port"])
        self.replicas.append(proc)
        return proc

    def start_relay(self) -> Proc:
        name = f"relay-{len(self.relays) + 1}"
        home = self.home / name
        home.mkdir(parents=True, exist_ok=True)
        proc = _spawn(
            name,
            home,
            ["roomtrust", "serve", "relay", "--region", REGION, "--name", name],
            self.env,
        )
        self._started.append(proc)
        ready = home / "meeting" / REGION / "relays" / name / "ready.json"
        proc.port = int(_wait_ready(proc, ready)["port"])
        self.relays.append(proc)
        return proc

    def kill(self, proc: Proc) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.process.send_signal(signal.SIGKILL)
        proc.process.wait()

    def relay_rows(self) -> list[dict[str, Any]]:
        with self.engine().connect() as conn:
            rows = conn.execute(sa.text("SELECT name, pid, lost FROM relays ORDER BY name"))
            return [dict(r._mapping) for r in rows]

    def placement(self, conference_id: str) -> tuple[str, int] | None:
        with self.engine().connect() as conn:
            row = conn.execute(
                sa.text("SELECT relay_name, moves FROM relay_placements WHERE conference_id = :c"),
                {"c": conference_id},
            ).first()
            return None if row is None else (str(row[0]), int(row[1]))

    def owner(self, conference_id: str) -> str | None:
        with self.engine().connect() as conn:
            row = conn.execute(
                sa.text("SELECT replica_id FROM conference_owners WHERE conference_id = :c"),
                {"c": conference_id},
            ).first()
            return None if row is None else str(row[0])

    def stop(self) -> None:
        if self.balancer is not None:
            stop_balancer(self.balancer.pid)
        for proc in reversed(self._started):
            _stop(proc)
        for pid in _replacement_relays(self.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@contextmanager
def replicated_meeting(
    tmp_path: Path, replicas: int = 2, relays: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[ReplicatedMeeting]:
    keys = write_region_secrets(tmp_path / "secrets", f"meeting-{REGION}")
    token_file = tmp_path / "secrets" / "relay-control-token"
    token_file.write_text(secrets.token_urlsafe(32))
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database())
        nats = stack.enter_context(nats_server(tmp_path / "nats"))
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        env = {
            "ROOMTRUST_REGION": REGION,
            "ROOMTRUST_PORT": "0",
            "ROOMTRUST_DATABASE_URL": url,
            "ROOMTRUST_BUS_URL": nats.url,
            "ROOMTRUST_CA_CERT_FILE": str(keys.files["region-ca-cert"]),
            "ROOMTRUST_CA_KEY_FILE": str(keys.files["region-ca-key"]),
            "ROOMTRUST_RELAY_TOKEN_FILE": str(token_file),
            "ROOMTRUST_BLOB_DIRECTORY": str(tmp_path / "shared-volume"),
            "ROOMTRUST_RELAY_REPLACE_DELAY": "0.5",
            **(extra_env or {}),
        }
        region = ReplicatedMeeting(tmp_path, env, url, keys.files["region-ca-cert"], nats)
        stack.callback(region.stop)
        region.start_replica()  # first alone: it migrates the shared database
        for _ in range(replicas - 1):
            region.start_replica()
        for _ in range(relays):
            region.start_relay()
        region.balancer = start_balancer(
            tmp_path / "balancer",
            "meeting",
            [Backend(r.name, r.port) for r in region.replicas],
        )
        yield region


def _spawn(name: str, home: Path, argv: list[str], env: dict[str, str]) -> Proc:
    log = (home / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        env={"PATH": str(Path(sys.executable).parent), **env, "ROOMTRUST_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    return Proc(name, process, home)


def _wait_ready(proc: Proc, ready: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if ready.exists():
            with contextlib.suppress(ValueError):
                data: dict[str, Any] = json.loads(ready.read_text())
                if data.get("pid") in (None, proc.process.pid):
                    return data
        if proc.process.poll() is not None:
            output = (proc.home / f"{proc.name}.log").read_text()[-2000:]
            raise RuntimeError(f"{proc.name} exited ({proc.process.returncode}): {output}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not start")
        time.sleep(0.05)


def _stop(proc: Proc) -> None:
    if proc.process.poll() is None:
        proc.process.terminate()
        try:
            proc.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            proc.process.wait()


def _replacement_relays(home: Path) -> list[int]:
    """Relays a replica started as replacements (they die with it, but a killed one's linger)."""
    pids = []
    for ready in home.glob("replica-*/meeting/*/relays/*/ready.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids.append(int(json.loads(ready.read_text())["pid"]))
    return pids
