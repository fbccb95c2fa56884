"""A real relay process for the relay tests, its control API, and UDP participants that talk to it;
and the shared live meeting stack whose region sa has two relays and a PSTN gateway."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_core.sources import AudioSource
from media_core.srtp import Direction, KeyMaterial, SrtpError, SrtpProfile, SrtpSession
from protocol.stack import Stack
from roomtrust.harness.plugin import MEDIA_REGION
from services.common.tls import client_context
from services.meeting.relay.files import control_token, ready_file, running_relays

REGION = "na"


@dataclass
class RelayProcess:
    home: Path
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    token: str
    region: str = REGION

    @property
    def media(self) -> tuple[str, int]:
        return self.ready["media_host"], int(self.ready["media_port"])

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_relay(home: Path, name: str) -> RelayProcess:
    path = ready_file(home, REGION, name)
    log = open(home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.meeting.relay"),
            *("--region", REGION, "--home", str(home), "--name", name),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"relay did not start: {(home / f'{name}.log').read_text()}")
        time.sleep(0.05)
    return RelayProcess(home, proc, json.loads(path.read_text()), control_token(home, REGION))


def stop_relay(relay: RelayProcess) -> None:
    if relay.alive():
        relay.proc.send_signal(signal.SIGTERM)
        try:
            relay.proc.wait(10)
        except subprocess.TimeoutExpired:
            relay.proc.kill()
            relay.proc.wait()


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    home = tmp_path_factory.mktemp("relayhome")
    process = start_relay(home, "relay-t")
    try:
        yield process
    finally:
        stop_relay(process)


@pytest.fixture
def control(relay: RelayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=relay.ready["control_url"],
        verify=client_context(relay.ready["ca_file"]),
        headers={"authorization": f"Bearer {relay.token}"},
        timeout=10,
    ) as client:
        yield client


class MediaParticipant:
    """A participant's media side over a real UDP socket (outbound only, as MT-12 wants)."""

    def __init__(self, grant: dict[str, Any], relay_address: tuple[str, int]) -> None:
        self.grant = grant
        self.relay_address = relay_address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.source = AudioSource(ssrc=secrets.randbits(32), first_sequence=secrets.randbits(16))
        self.sent: list[bytes] = []
        self.use(grant)
        self.previous_inbound: SrtpSession | None = None

    def use(self, grant: dict[str, Any]) -> None:
        profile = SrtpProfile(grant["profile"])
        self.send_key = KeyMaterial.decode(profile, grant["send_key"])
        self.receive_key = KeyMaterial.decode(profile, grant["receive_key"])
        self.out = SrtpSession(self.send_key, Direction.OUTBOUND)
        self.inbound = SrtpSession(self.receive_key, Direction.INBOUND)

    def rekey(self, grant: dict[str, Any]) -> None:
        """Switch to new keys; keep the old receive key until the relay has switched too."""
        old = self.inbound
        self.use(grant)
        self.previous_inbound = old

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send_plain(self, plain: bytes) -> bytes:
        data = self.out.protect(plain)
        self.sock.sendto(data, self.relay_address)
        self.sent.append(plain)
        return data

    def send_frame(self) -> bytes:
        plain = self.source.next_frame()[0].build()
        self.send_plain(plain)
        return plain

    def receive(self, expected: int, timeout: float = 5.0) -> list[bytes]:
        """Unprotected packets, until `expected` arrived or the time is up."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            got.append(self.open(data))
        return got

    def open(self, data: bytes) -> bytes:
        try:
            return self.inbound.unprotect(data)
        except SrtpError:
            if self.previous_inbound is None:
                raise
            return self.previous_inbound.unprotect(data)

    def drain(self) -> int:
        count = 0
        while True:
            try:
                self.sock.recvfrom(2048)
            except TimeoutError:
                return count
            count += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def join(relay: RelayProcess, control: httpx.Client) -> Iterator[Callable[..., MediaParticipant]]:
    """Admit a participant through the control API and open its media socket."""
    made: list[MediaParticipant] = []

    def _join(
        conference_id: str, profile: str = "AES_CM_128_HMAC_SHA1_80", hello: bool = True
    ) -> MediaParticipant:
        participant_id = f"p-{secrets.token_hex(4)}"
        response = control.put(
            f"/v1/participants/{participant_id}",
            json={"conference_id": conference_id, "profile": profile},
        )
        assert response.status_code == 201, response.text
        grant = response.json()
        participant = MediaParticipant(grant, (grant["media"]["host"], grant["media"]["port"]))
        made.append(participant)
        if hello:  # the first authenticated packet tells the relay where the participant is
            participant.send_frame()
        return participant

    yield _join
    for participant in made:
        control.delete(f"/v1/participants/{participant.grant['participant_id']}")
        participant.close()


@pytest.fixture
def relay_counters(control: httpx.Client) -> Callable[[], dict[str, int]]:
    def _read() -> dict[str, int]:
        response = control.get("/v1/counters")
        assert response.status_code == 200, response.text
        data: dict[str, int] = response.json()
        return data

    return _read


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """Poll a condition (the relay works asynchronously) until it holds or the time is up."""
    return _wait_for


# -- the live meeting stack (the harness's), whose region sa has two relays ----------------------


@dataclass
class MediaRegion:
    """The media region of the shared stack: its home, its signaling URL and CA."""

    home: Path
    region: str
    url: str
    ca_file: Path

    def relays(self) -> dict[str, dict[str, Any]]:
        return {str(r["name"]): r for r in running_relays(self.home, self.region)}


@pytest.fixture
def media_region(meeting_stack: Stack) -> Iterator[MediaRegion]:
    region = MEDIA_REGION
    endpoint = meeting_stack.endpoint("meeting", region)
    url, ca = endpoint.url, endpoint.ca_file
    home = meeting_stack.home
    assert wait_for_relays(home, region, 2), "the media region has no relays"
    yield MediaRegion(home, region, url, ca)


def wait_for_relays(home: Path, region: str, count: int, timeout: float = 60.0) -> bool:
    """Until `count` relays of the region answer their health check (replacements included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        healthy = 0
        for ready in running_relays(home, region):
            try:
                with httpx.Client(verify=client_context(ready["ca_file"]), timeout=2) as client:
                    healthy += client.get(f"{ready['control_url']}/v1/health").status_code == 200
            except httpx.HTTPError:
                continue
        if healthy >= count:
            return True
        time.sleep(0.2)
    return False
