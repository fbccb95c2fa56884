"""What a replicated meeting region of the local stack shares: the NATS server, the region's files.

`roomtrust up --replicas N` (or `--meeting-replicas M`) runs each meeting region as signaling
replicas on PostgreSQL with core NATS between them (docs/meeting-replicas.md). The stack starts
one NATS server (`start_bus`: Debian's nats-server on a free loopback port, JetStream off, its log
under `<home>/nats/`); the regions share it, each on its own subjects
(`roomtrust.meeting.<region>.…`), so a stack of four regions costs one process instead of four.

`region_files()` prepares what every process of a region reads from the region's directory
`<home>/meeting/<region>/`, exactly where a single region process keeps them, so the relays, the
PSTN and interop gateways and the tools that look there find them: the region CA (`ca/ca.pem`,
`ca/ca.key`), the relay, PSTN and interop service tokens, and the recording master key. The
replicas get them as mounted secret files (the settings' `*_FILE`); each replica keeps its own
state directory (`replicas/rN/`) except the recordings, the server logs and the relays' files,
which are the region's `recordings/`, `logs/` and `relays/` in every replica (shared volumes; the
deployed regions' finished recordings go to one bucket).
`write_region_entry()` writes the region's `ready.json` naming the balancer: the gateways dial the
region through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.stack import LoadBalancer, MessageBus, StackError
from roomtrust.stack.balancer import free_port
from services.common.ca import RegionCA
from services.meeting.relay.files import (
    INTEROP_TOKEN_FILE,
    PSTN_TOKEN_FILE,
    TOKEN_FILE,
    region_directory,
)

NATS_SERVER = "/usr/sbin/nats-server"
BUS_START_TIMEOUT = 15.0
# the replicas' state subdirectories that are the region's own (one volume mounted in each):
# recordings (any replica serves any recording), server logs (the region's retention applies to
# them), relays (a replacement relay a replica starts is one of the region's relays)
SHARED_DIRECTORIES = ("recordings", "logs", "relays")


def nats_missing() -> str | None:
    """Why the stack's NATS server cannot run here, or None."""
    if not os.access(NATS_SERVER, os.X_OK):
        return f"nats-server is not installed ({NATS_SERVER} missing; apt-get install nats-server)"
    return None


def start_bus(home: Path, timeout: float = BUS_START_TIMEOUT) -> MessageBus:
    """Start the stack's nats-server (core NATS only: no `-js`, so nothing is stored) on free
    loopback ports, in a session of its own (it outlives `roomtrust up`); returns once its
    monitoring endpoint answers /healthz."""
    missing = nats_missing()
    if missing:
        raise StackError(f"meeting replicas talk over NATS: {missing}")
    directory = home / "nats"
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "nats.log"
    port, monitor = free_port(), free_port()
    proc = subprocess.Popen(
        [
            *(NATS_SERVER, "-a", "127.0.0.1", "-p", str(port)),
            *("-m", str(monitor), "-l", str(log), "-P", str(directory / "nats.pid")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    bus = MessageBus(proc.pid, f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}", str(log))
    deadline = time.monotonic() + timeout
    while not bus_healthy(bus):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log.read_text()[-500:] if log.exists() else ""
            raise StackError(f"nats-server did not start on 127.0.0.1:{port}: {tail}")
        time.sleep(0.05)
    return bus


def bus_healthy(bus: MessageBus, timeout: float = 2.0) -> bool:
    """Whether the NATS server answers its monitoring /healthz with 200."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{bus.monitor_url}/healthz", timeout=timeout).status_code == 200
    return False


@dataclass(frozen=True)
class RegionFiles:
    """The files every process of a replicated meeting region shares, and the settings naming them."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    relay_token: Path
    pstn_token: Path
    interop_token: Path
    recording_key: Path

    def env(self) -> dict[str, str]:
        return {
            "ROOMTRUST_CA_CERT_FILE": str(self.ca_cert),
            "ROOMTRUST_CA_KEY_FILE": str(self.ca_key),
            "ROOMTRUST_RELAY_TOKEN_FILE": str(self.relay_token),
            "ROOMTRUST_PSTN_TOKEN_FILE": str(self.pstn_token),
            "ROOMTRUST_INTEROP_TOKEN_FILE": str(self.interop_token),
            "ROOMTRUST_RECORDING_KEY_FILE": str(self.recording_key),
        }


def _write_once(path: Path, data: bytes) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def region_files(home: Path, region: str) -> RegionFiles:
    """The region's CA, service tokens and recording key under `<home>/meeting/<region>/`, made
    once (a stack started again keeps them)."""
    directory = region_directory(home, region)
    RegionCA.load_or_create(directory / "ca", f"meeting-{region}")
    files = RegionFiles(
        directory,
        directory / "ca" / "ca.pem",
        directory / "ca" / "ca.key",
        directory / TOKEN_FILE,
        directory / PSTN_TOKEN_FILE,
        directory / INTEROP_TOKEN_FILE,
        directory / "keys" / "recording-master.key",
    )
    for token in (files.relay_token, files.pstn_token, files.interop_token):
        _write_once(token, secrets.token_urlsafe(32).encode())
    _write_once(files.recording_key, AESGCM.generate_key(bit_length=256))
    for name in SHARED_DIRECTORIES:
        (directory / name).mkdir(parents=True, exist_ok=True)
    return files


def share_directories(region_dir: Path, replica_state: Path) -> None:
    """Make the replica's shared subdirectories links to the region's (before it starts)."""
    replica_state.mkdir(parents=True, exist_ok=True)
    for name in SHARED_DIRECTORIES:
        link = replica_state / name
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(region_dir / name, target_is_directory=True)


def write_region_entry(home: Path, region: str, balancer: LoadBalancer) -> Path:
    """The region's ready file names its balancer: whatever dials the region by its state
    directory (the PSTN and interop gateways) reaches it through the balancer."""
    ready = region_directory(home, region) / "ready.json"
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": balancer.port, "pid": balancer.pid, "balancer": True}))
    tmp.replace(ready)
    return ready
