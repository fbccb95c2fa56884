"""The load driver core with a scripted network (no gevent, no Locust): the real DeviceAgent and
MeetingClient, one request event per request and message, named by endpoint kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devices_virtual.agent import AgentConfig, DeviceAgent, DeviceIdentity, Phase
from devices_virtual.agent.firmware import NO_RELEASE_KEY
from devices_virtual.meeting_client import MeetingClient, PasswordLogin, Start, State
from devices_virtual.models import get_model
from load.client.driver import (
    DeviceDriver,
    MeetingDriver,
    Reply,
    StatusError,
    TlsIdentity,
    TransportError,
)
from load.kinds import UNDEPLOYED_ENROLL

DM = "https://127.0.0.1:9"


class Script:
    """A network answering from a table (path -> reply or exception), recording what it saw."""

    def __init__(self, answers: dict[str, Reply | Exception]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, bool, str | None]] = []
        self.sent: list[dict[str, Any]] = []
        self.sockets: list[tuple[Callable[[str], None], Callable[[int], None]]] = []
        self.forgotten: list[str] = []

    def http(
        self, method: str, url: str, body: Any, *, tls: TlsIdentity | None, bearer: str | None
    ) -> Reply:
        path = url.split("9", 1)[1]
        self.seen.append((method, path, tls is not None, bearer))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def websocket(
        self,
        url: str,
        *,
        tls: TlsIdentity | None,
        bearer: str | None,
        on_message: Callable[[str], None],
        on_close: Callable[[int], None],
    ) -> Any:
        script = self
        self.sockets.append((on_message, on_close))

        class Sock:
            def send(self, text: str) -> None:
                script.sent.append(json.loads(text))

            def close(self, code: int = 1000) -> None:
                return None

        return Sock()

    def forget(self, tls: TlsIdentity) -> None:
        self.forgotten.append(tls.key)


class Events:
    def __init__(self) -> None:
        self.fired: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.fired.append(kwargs)

    def names(self) -> list[tuple[str, str]]:
        return [(e["request_type"], e["name"]) for e in self.fired]

    def failed(self) -> list[dict[str, Any]]:
        return [e for e in self.fired if e["exception"] is not None]


ENROLLED = Reply(201, {"device_id": "d1", "certificate_pem": "", "ca_pem": ""}, 10)


def _device(script: Script, events: Events, **kw: Any) -> DeviceDriver:
    identity = DeviceIdentity(
        "02:00:00:00:00:01", "SN1", get_model("MeetingBar A30"), "room", "csr"
    )
    config = AgentConfig(dm_url=DM, boot_seconds=0, connectivity_checks=False)
    paced = frozenset({"boot", "heartbeat", "telemetry", "enroll"})
    return DeviceDriver(DeviceAgent(identity, config), script, events, paced=paced, **kw)


def test_enrollment_then_paced_telemetry_fires_one_event_per_request() -> None:
    script = Script(
        {
            "/v1/enroll": ENROLLED,
            "/v1/device/heartbeat": Reply(200, {"next_heartbeat_s": 30}, 5),
            "/v1/device/telemetry": Reply(200, {"stored": True}, 5),
        }
    )
    events = Events()
    driver = _device(script, events)
    driver.power_on()
    driver.tick("boot")
    assert driver.agent.phase is Phase.ONLINE
    assert driver.tls is not None and driver.tls.key == "d1"
    # enrollment without a client certificate, then the session with it, then the channel
    assert script.seen[0][:3] == ("POST", "/v1/enroll", False)
    assert all(tls for _m, _p, tls, _b in script.seen[1:])
    assert events.names() == [
        ("HTTP", "dm enroll"),
        ("HTTP", "dm heartbeat"),
        ("HTTP", "dm telemetry"),
        ("WSS open", "dm command channel"),
    ]
    for _ in range(3):
        driver.tick("telemetry")
    driver.tick("heartbeat")
    assert events.names()[4:] == [("HTTP", "dm telemetry")] * 3 + [("HTTP", "dm heartbeat")]
    assert not events.failed()
    assert all(e["response_time"] >= 0 for e in events.fired)
    assert events.fired[0]["response_length"] == 10


def test_command_channel_messages_fire_receipts() -> None:
    script = Script(
        {
            "/v1/enroll": ENROLLED,
            "/v1/device/heartbeat": Reply(200, {}, 2),
            "/v1/device/telemetry": Reply(200, {}, 2),
        }
    )
    events = Events()
    driver = _device(script, events)
    driver.power_on()
    driver.tick("boot")
    on_message, on_close = script.sockets[0]
    command = {"type": "command", "command_id": "c1", "kind": "config", "payload": {}}
    on_message(json.dumps(command))
    on_message("not json")
    assert ("WSS recv", "dm command") in events.names()
    assert [e["name"] for e in events.failed()] == ["dm invalid message"]
    # a revoked channel (4003) sends the agent back to enrollment and forgets the certificate
    on_close(4003)
    assert not driver.agent.enrolled and driver.tls is None
    assert set(script.forgotten) == {"d1"}


def test_the_agent_applies_a_pushed_profile_and_uploads_diagnostics_under_load() -> None:
    script = Script(
        {
            "/v1/enroll": ENROLLED,
            "/v1/device/heartbeat": Reply(200, {}, 2),
            "/v1/device/telemetry": Reply(200, {}, 2),
            "/v1/device/diagnostics": Reply(201, {"bundle_id": "b1"}, 2),
        }
    )
    events = Events()
    driver = _device(script, events)
    driver.power_on()
    driver.tick("boot")
    on_message, _on_close = script.sockets[0]
    payload = {"version": "load@1", "values": {"dm.telemetry_s": 120, "log.level": "debug"}}
    on_message(
        json.dumps({"type": "command", "command_id": 5, "kind": "config", "payload": payload})
    )
    assert script.sent == [
        {"type": "ack", "command_id": 5, "result": {"applied": True, "version": "load@1"}}
    ]
    assert driver.due["telemetry"] == pytest.approx(driver.clock() + 120, abs=5)
    assert ("WSS send", "dm ack") in events.names()
    assert events.names()[-1] == ("HTTP", "dm telemetry")  # the applied version is reported
    diagnostics = {"type": "command", "command_id": 6, "kind": "diagnostics", "payload": {}}
    on_message(json.dumps(diagnostics))
    assert script.seen[-1] == ("POST", "/v1/device/diagnostics", True, None)
    assert events.names()[-1] == ("HTTP", "dm diagnostics") and not events.failed()


def test_a_firmware_download_is_fetched_with_the_device_certificate() -> None:
    script = Script(
        {
            "/v1/enroll": ENROLLED,
            "/v1/device/heartbeat": Reply(200, {}, 2),
            "/v1/device/telemetry": Reply(200, {}, 2),
            "/v1/device/firmware/dl1": Reply(200, b"not a package", 13),
            "/v1/device/health": Reply(200, {}, 2),
        }
    )
    events = Events()
    driver = _device(script, events)
    driver.power_on()
    driver.tick("boot")
    on_message, _on_close = script.sockets[0]
    payload = {"op": "install", "download": "/v1/device/firmware/dl1", "key": "A" * 43 + "="}
    on_message(
        json.dumps({"type": "command", "command_id": 7, "kind": "firmware", "payload": payload})
    )
    assert ("GET", "/v1/device/firmware/dl1", True, None) in script.seen
    assert ("HTTP", "dm firmware") in events.names()
    # the bytes reached the agent, which checks them before anything is installed
    (ack,) = [m for m in script.sent if m["type"] == "ack"]
    assert ack["result"]["ok"] is False and ack["result"]["reason"] == NO_RELEASE_KEY


def test_undeployed_device_counts_403_as_wanted_and_201_as_failure() -> None:
    refused = Reply(403, {"reason": "not deployed"}, 20)
    script = Script({"/v1/enroll": refused})
    events = Events()
    undeployed = dict(expect={"enroll": frozenset({403})}, names={"enroll": UNDEPLOYED_ENROLL})
    driver = _device(script, events, **undeployed)
    driver.power_on()
    driver.tick("boot")
    driver.tick("enroll")
    assert events.names() == [("HTTP", UNDEPLOYED_ENROLL)] * 2
    assert not events.failed()
    assert driver.agent.phase is Phase.ENROLL_WAIT and driver.tls is None
    # the service accepting a device nobody deployed is a failure of the run
    script.answers["/v1/enroll"] = ENROLLED
    script.answers["/v1/device/heartbeat"] = Reply(200, {}, 0)
    script.answers["/v1/device/telemetry"] = Reply(200, {}, 0)
    driver.tick("enroll")
    failure = events.failed()[0]
    assert failure["name"] == UNDEPLOYED_ENROLL
    assert isinstance(failure["exception"], StatusError) and failure["exception"].status == 201


def test_no_answer_is_a_failure_event_and_a_failed_request_for_the_agent() -> None:
    script = Script({"/v1/enroll": TransportError("ConnectionRefusedError: refused")})
    events = Events()
    driver = _device(script, events)
    driver.power_on()
    driver.tick("boot")
    (failure,) = events.fired
    assert failure["name"] == "dm enroll" and isinstance(failure["exception"], TransportError)
    assert driver.agent.phase is Phase.ENROLL_WAIT  # the agent backs off and retries


@pytest.mark.parametrize("status", [401, 500])
def test_meeting_login_refused_is_a_failure(status: int) -> None:
    script = Script({"/v1/auth/login": Reply(status, {"reason": "no"}, 3)})
    events = Events()
    client = MeetingClient(DM, PasswordLogin("ada@example.com", "pw"))
    driver = MeetingDriver(client, script, events)
    driver.feed(Start(0.0))
    assert client.state is State.FAILED
    assert [e["name"] for e in events.failed()] == ["meeting login"]


def test_meeting_messages_are_named_by_type() -> None:
    script = Script({"/v1/auth/login": Reply(200, {"token": "t", "account_id": "a1"}, 3)})
    events = Events()
    client = MeetingClient(DM, PasswordLogin("ada@example.com", "pw"))
    driver = MeetingDriver(client, script, events)
    driver.feed(Start(0.0))
    on_message, _on_close = script.sockets[0]
    on_message(json.dumps({"type": "hello", "account_id": "a1"}))
    on_message(json.dumps({"type": "error", "reason": "join a conference first"}))
    assert client.state is State.READY
    assert events.names() == [
        ("HTTP", "meeting login"),
        ("WSS open", "meeting signaling"),
        ("WSS recv", "meeting hello"),
        ("WSS recv", "meeting error"),
    ]
    assert [e["name"] for e in events.failed()] == ["meeting error"]
    assert script.seen[0][3] is None  # the login carries no bearer token
