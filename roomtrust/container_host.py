"""The project's own test host for a container spec: run a service the way its container runs.

Each part stands in for what the cloud gives a container, using only this machine (root needed):

- `NetnsHost`: a network namespace joined to this one by a veth pair with addresses of its own
  (10.x), so the service is reached on a non-loopback address, as a probe or ingress reaches it.
- `readonly_root_argv()`: the command run under `unshare --mount` in a fresh root made of read-only
  bind mounts of this machine's root, with the container's volumes mounted at their paths (the only
  writable places), then `chroot`: the read-only root filesystem of the image.
- `fresh_database()`: a new PostgreSQL database on 127.0.0.1:5432, dropped afterwards.
- `TcpForwarder`: a port on the namespace's gateway address forwarded to a loopback-only server
  (PostgreSQL here), as the region's private network reaches its database.
- `local_nats()`: a core NATS server (no JetStream) on loopback, on ports it picks, with its
  monitoring endpoint: a region's bus, reached from the namespace through a `TcpForwarder`.
- `write_region_secrets()`: the region's Key Vault secrets (CA certificate and key, release key) as
  the files a secret volume mounts.

Every part says why it cannot run here (`host_missing()`), and cleans up what it made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common.ca import RegionCA, cert_pem, key_pem
from services.common.firmware import generate_release_key, release_key_pem

POSTGRES = ("127.0.0.1", 5432)
ADMIN_DATABASE_URL = "postgresql://root@127.0.0.1:5432/test"

# Builds the read-only root in "$root", mounts the volumes, then chroots and runs the command.
# Arguments: root, the number of mounts, then source, target and ro|rw per mount, then the command.
_READONLY_ROOT = r"""
set -eu
mount=@MOUNT@; chroot=@CHROOT@
root=$1; count=$2; shift 2
"$mount" -t tmpfs -o mode=0755 rtroot "$root"
for entry in /*; do
  name=${entry#/}
  if [ -L "$entry" ]; then
    ln -s "$(readlink "$entry")" "$root/$name"
  elif [ -d "$entry" ]; then
    mkdir "$root/$name"
    case "$name" in
      proc|sys|dev) "$mount" --rbind "$entry" "$root/$name" ;;
      tmp|run) ;;
      *) "$mount" --rbind "$entry" "$root/$name"; "$mount" -o remount,bind,ro "$root/$name" ;;
    esac
  fi
done
while [ "$count" -gt 0 ]; do
  mkdir -p "$root$2"
  "$mount" --bind "$1" "$root$2"
  if [ "$3" = ro ]; then "$mount" -o remount,bind,ro "$root$2"; fi
  shift 3; count=$((count - 1))
done
"$mount" -o remount,ro "$root"
exec "$chroot" "$root" "$@"
"""


def host_missing() -> str | None:
    """Why this machine cannot be the test host, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, mount namespaces, chroot)"
    for tool in ("ip", "unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None


def postgres_missing() -> str | None:
    try:
        with socket.create_connection(POSTGRES, timeout=2):
            return None
    except OSError as exc:
        return f"PostgreSQL does not answer on {POSTGRES[0]}:{POSTGRES[1]} ({exc})"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str  # the path inside the container
    writable: bool


def readonly_root_argv(root: Path, mounts: Sequence[Mount], command: Sequence[str]) -> list[str]:
    """`command` in a read-only copy of this machine's root with `mounts` at their targets;
    `root` is an empty directory the new root is built on (in the new mount namespace only)."""
    # absolute paths: the command's own PATH (the container's) may not have sbin
    script = _READONLY_ROOT.replace("@MOUNT@", _tool("mount")).replace("@CHROOT@", _tool("chroot"))
    argv = [_tool("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"]
    argv += [str(root), str(len(mounts))]
    for mount in mounts:
        argv += [str(mount.source), mount.target, "rw" if mount.writable else "ro"]
    return argv + list(command)


def _tool(name: str) -> str:
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if os.access(f"{directory}/{name}", os.X_OK):
            return f"{directory}/{name}"
    return shutil.which(name) or name


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class NetnsHost:
    """A network namespace with a veth pair: `gateway` on this side, `address` inside."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"rt-{tag}"
        self._outside, self._inside = f"rt{tag}h", f"rt{tag}c"
        # a /30 in 10.200.0.0-10.249.255.255, picked at random so parallel runs do not meet
        second, third, fourth = (
            200 + secrets.randbelow(50),
            secrets.randbelow(256),
            secrets.randbelow(64) * 4,
        )
        self.gateway = f"10.{second}.{third}.{fourth + 1}"
        self.address = f"10.{second}.{third}.{fourth + 2}"

    def __enter__(self) -> NetnsHost:
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self._outside, "type", "veth", "peer", "name", self._inside)
            _ip("link", "set", self._inside, "netns", self.name)
            _ip("addr", "add", f"{self.gateway}/30", "dev", self._outside)
            _ip("link", "set", self._outside, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "addr", "add", f"{self.address}/30", "dev", self._inside)
            _ip(*inside, "link", "set", self._inside, "up")
            _ip(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self._outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def argv(self, command: Sequence[str]) -> list[str]:
        return [_tool("ip"), "netns", "exec", self.name, *command]


class TcpForwarder:
    """Listens on (host, any free port) and relays each connection to `target`."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server((host, 0))
        self.host, self.port = self._server.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-forwarder", daemon=True)

    def __enter__(self) -> TcpForwarder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closed.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the local PostgreSQL; yields its name and drops it on exit."""
    import psycopg

    name = f"rt_contract_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


NATS_SERVER = "/usr/sbin/nats-server"


@dataclass(frozen=True)
class LocalNats:
    """A running nats-server: its client address and its monitoring URL (`/connz`, `/healthz`)."""

    host: str
    port: int
    monitor_url: str


def nats_missing() -> str | None:
    if not os.access(NATS_SERVER, os.X_OK):
        return f"nats-server is not installed ({NATS_SERVER} missing; apt-get install nats-server)"
    return None


@contextlib.contextmanager
def local_nats(directory: Path) -> Iterator[LocalNats]:
    """Core NATS on 127.0.0.1 (ports chosen by the server: `-1`, read from its ports file);
    nothing persisted (no `-js`); stopped on exit."""
    import json
    import time

    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "nats.log"
    process = subprocess.Popen(
        [
            *(NATS_SERVER, "-a", "127.0.0.1", "-p", "-1", "-m", "-1"),
            *("--ports_file_dir", str(directory), "-l", str(log)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ports_file = directory / f"nats-server_{process.pid}.ports"
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError, ValueError):
                ports = json.loads(ports_file.read_text())
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {log.read_text()[-500:]}")
            time.sleep(0.02)
        client = ports["nats"][0].rsplit(":", 1)
        yield LocalNats("127.0.0.1", int(client[1]), ports["monitoring"][0])
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class RegionSecrets:
    ca: RegionCA
    files: dict[str, Path]  # Key Vault secret name -> file


def write_region_secrets(directory: Path, name: str) -> RegionSecrets:
    """The region's Key Vault secrets as files named after them, as a secret volume mounts them:
    `region-ca-cert`, `region-ca-key` (P-256, PEM) and `release-key` (Ed25519, PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = RegionCA.create(name)
    contents = {
        "region-ca-cert": cert_pem(ca.cert),
        "region-ca-key": key_pem(ca.key),
        "release-key": release_key_pem(generate_release_key()),
    }
    files = {}
    for secret, data in contents.items():
        path = directory / secret
        path.write_bytes(data)
        path.chmod(0o644)  # the service runs as another user in the image
        files[secret] = path
    return RegionSecrets(ca, files)
