"""One HAProxy in front of a region's replicas: Debian's haproxy, run as a process of the stack.

The balancer passes TCP through (`mode tcp`): the TLS session, so a device's client certificate,
goes from the device to a replica untouched, as the cloud's TCP load balancer passes it. New
connections go to the replica with the fewest (`balance leastconn`). HAProxy probes every replica's
readiness path over TLS (`option httpchk`, `check-ssl verify none`: a probe dials an address and
only asks whether the replica answers 200, as the image's HEALTHCHECK does) and takes a replica
that fails out of rotation; the connections it still held are closed (`on-marked-down
shutdown-sessions`), so their devices reconnect through the balancer to a healthy replica. A
connection attempt to a replica that died before its probe noticed is retried on another
(`retries` with `option redispatch`).

`render_config()` writes the configuration; `start_balancer()` starts haproxy on a free loopback
port and waits until it listens; `server_states()` reads each replica's state from HAProxy's stats
socket (`show stat`), the balancer's own view of which replicas are in rotation.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HAPROXY = "/usr/sbin/haproxy"
HEALTH_PATH = "/healthz"
CHECK_INTERVAL_MS = 500
FALL = 2  # failed probes before a replica leaves the rotation
RISE = 1  # passed probes before it comes back
START_TIMEOUT = 10.0
# A device channel is a long-lived WebSocket: the balancer must not cut a quiet one.
TUNNEL_TIMEOUT = "1h"


class BalancerError(RuntimeError):
    """haproxy is missing, refused its configuration, or did not start; the message says why."""


@dataclass(frozen=True)
class Backend:
    """One replica behind the balancer."""

    name: str
    port: int
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Balancer:
    """A running haproxy: where it listens, its process, its files."""

    name: str
    port: int
    pid: int
    config: Path
    stats_socket: Path
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def haproxy_missing() -> str | None:
    """Why haproxy cannot run here, or None."""
    if not os.access(HAPROXY, os.X_OK):
        found = shutil.which("haproxy")
        if found is None:
            return f"haproxy is not installed ({HAPROXY} missing; apt-get install haproxy)"
    return None


def haproxy_binary() -> str:
    return HAPROXY if os.access(HAPROXY, os.X_OK) else shutil.which("haproxy") or HAPROXY


def render_config(
    name: str,
    port: int,
    backends: Sequence[Backend],
    stats_socket: Path,
    health_path: str = HEALTH_PATH,
    check_interval_ms: int = CHECK_INTERVAL_MS,
) -> str:
    """The haproxy.cfg of one balancer: a TCP frontend on 127.0.0.1:`port`, the replicas behind."""
    if not backends:
        raise BalancerError(f"balancer {name}: no replica to balance")
    servers = "\n".join(
        f"    server {b.name} {b.host}:{b.port} check check-ssl verify none "
        f"inter {check_interval_ms} fall {FALL} rise {RISE} on-marked-down shutdown-sessions"
        for b in backends
    )
    return f"""\
global
    maxconn 4000
    stats socket {stats_socket} mode 600 level admin
    log stdout format raw local0 notice

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 3s
    timeout client {TUNNEL_TIMEOUT}
    timeout server {TUNNEL_TIMEOUT}
    timeout tunnel {TUNNEL_TIMEOUT}
    timeout check 2s
    retries 3
    option redispatch 1

frontend {name}
    bind 127.0.0.1:{port}
    default_backend {name}_replicas

backend {name}_replicas
    balance leastconn
    option httpchk
    http-check send meth GET uri {health_path} ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
{servers}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_balancer(
    directory: Path,
    name: str,
    backends: Sequence[Backend],
    *,
    port: int = 0,
    detach: bool = False,
    timeout: float = START_TIMEOUT,
) -> Balancer:
    """Write the configuration into `directory`, check it, start haproxy in the foreground of its
    own process and wait until it listens. `port` 0 takes a free loopback port (tried again if
    another process takes it first). `detach` puts it in a session of its own, so it outlives the
    command that started it (`roomtrust up`)."""
    missing = haproxy_missing()
    if missing:
        raise BalancerError(missing)
    directory.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port else 5
    last = ""
    for _ in range(attempts):
        chosen = port or free_port()
        balancer = _start_once(directory, name, backends, chosen, detach, timeout)
        if isinstance(balancer, Balancer):
            return balancer
        last = balancer
    raise BalancerError(f"balancer {name} did not start: {last}")


def _start_once(
    directory: Path,
    name: str,
    backends: Sequence[Backend],
    port: int,
    detach: bool,
    timeout: float,
) -> Balancer | str:
    config = directory / "haproxy.cfg"
    stats = directory / "haproxy.sock"
    log_path = directory / "haproxy.log"
    config.write_text(render_config(name, port, backends, stats))
    checked = subprocess.run(
        [haproxy_binary(), "-c", "-q", "-f", str(config)], capture_output=True, text=True
    )
    if checked.returncode != 0:
        raise BalancerError(f"haproxy refused {config}: {checked.stdout}{checked.stderr}")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
    deadline = time.monotonic() + timeout
    while not (_listening(port) and stats.exists()):
        if proc.poll() is not None:
            return f"exited with {proc.returncode}: {log_path.read_text()[-500:]}"
        if time.monotonic() > deadline:
            stop_balancer(proc.pid)
            return f"not listening on 127.0.0.1:{port} after {timeout:.0f} s"
        time.sleep(0.02)
    return Balancer(name, port, proc.pid, config, stats, log_path)


def stop_balancer(pid: int, timeout: float = 5.0) -> None:
    """Stop haproxy (SIGTERM: it closes every connection at once), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def server_states(stats_socket: Path, timeout: float = 2.0) -> dict[str, dict[str, str]]:
    """Each replica's row of `show stat` by server name: `status` (UP, DOWN, ...), `check_status`,
    `scur` (its current connections), `stot` (connections so far)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {
        row["svname"]: {k: row.get(k) or "" for k in ("status", "check_status", "scur", "stot")}
        for row in rows
        if row["svname"] not in ("FRONTEND", "BACKEND")
    }


def wait_for_states(
    stats_socket: Path, wanted: dict[str, str], timeout: float = 10.0
) -> dict[str, dict[str, str]]:
    """Wait until each named replica's status starts with its wanted one (e.g. "UP", "DOWN")."""
    deadline = time.monotonic() + timeout
    while True:
        states = server_states(stats_socket)
        if all(states.get(n, {}).get("status", "").startswith(s) for n, s in wanted.items()):
            return states
        if time.monotonic() > deadline:
            raise BalancerError(f"replicas not {wanted} after {timeout:.0f} s: {states}")
        time.sleep(0.05)
