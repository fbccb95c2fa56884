"""The sans-IO device agent: events in, actions out; no network, no sleep, no real clock."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devices_virtual.agent import (
    Action,
    AgentConfig,
    CallStateChanged,
    CancelTimer,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    CloseDmSession,
    DeviceAgent,
    DeviceIdentity,
    DmToggled,
    DownloadDone,
    DownloadFile,
    FaultCleared,
    FaultInjected,
    ForgetCredential,
    HttpRequest,
    HttpResponse,
    ImageInstalled,
    InstallImage,
    NetworkChanged,
    NetworkInfo,
    NtpQuery,
    NtpReply,
    OpenChannel,
    Phase,
    PowerOn,
    ProxyTestToggled,
    Reboot,
    RequestFailed,
    SendChannel,
    StartTimer,
    StoreCredential,
    TimerFired,
    UserOpenedLink,
)
from devices_virtual.agent.domains import BOOT_HOSTS, NTP_SERVERS
from devices_virtual.agent.firmware import image_self_test, virtual_image
from devices_virtual.agent.telemetry import DM09_FIELDS
from devices_virtual.models import get_model
from protocol.fields import ENVELOPE_FIELDS, REPORT_ID
from services.common import firmware
from services.dm.domain.diagnostics import BUNDLE_FIELDS
from services.dm.domain.diagnostics import _check_bundle as check_bundle
from services.dm.domain.fields import validate_telemetry
from services.dm.store.models import Device

DM = "https://127.0.0.1:4431"
ENROLLED = {"device_id": "dev-1", "certificate_pem": "CERT", "ca_pem": "CA"}


def make_agent(model: str = "MeetingBar A20", **config: Any) -> DeviceAgent:
    identity = DeviceIdentity(
        mac="02:00:00:00:00:01",
        serial_number="SN0001",
        model=get_model(model),
        name="Room 1",
        csr_pem="CSR",
        time_zone="Europe/Berlin",
    )
    return DeviceAgent(identity, AgentConfig(dm_url=DM, **config))


def requests(actions: list[Action], target: str | None = None) -> list[HttpRequest]:
    return [a for a in actions if isinstance(a, HttpRequest) and target in (None, a.target)]


def timers(actions: list[Action]) -> dict[str, float]:
    return {a.name: a.at for a in actions if isinstance(a, StartTimer)}


def to_dm(actions: list[Action]) -> list[Action]:
    return [a for a in actions if getattr(a, "target", None) == "dm"]


def answer_checks(agent: DeviceAgent, actions: list[Action], now: float) -> list[Action]:
    out: list[Action] = []
    for check in requests(actions, "connectivity"):
        if check.url.endswith("/ncsi.txt"):
            out += agent.handle(HttpResponse(now, check.request_id, 200, "Microsoft NCSI"))
        else:
            out += agent.handle(HttpResponse(now, check.request_id, 204))
    return out


def boot_to_dm(agent: DeviceAgent, now: float = 0.0) -> list[Action]:
    """Power on, let the boot timer fire, answer the checks and NTP; returns the DM actions."""
    boot = agent.handle(PowerOn(now))
    at = timers(boot)["boot"]
    checks = agent.handle(TimerFired(at, "boot"))
    ntp = answer_checks(agent, checks, at + 0.1)
    (query,) = [a for a in ntp if isinstance(a, NtpQuery)]
    return agent.handle(NtpReply(at + 0.2, query.request_id, 1_700_000_000.0))


def online(agent: DeviceAgent) -> list[Action]:
    (enroll,) = requests(boot_to_dm(agent), "dm")
    return agent.handle(HttpResponse(100.0, enroll.request_id, 201, ENROLLED))


def test_boot_waits_for_the_model_boot_time_then_checks_connectivity_first() -> None:
    agent = make_agent("MeetingBoard 86")
    actions = agent.handle(PowerOn(10.0))
    assert timers(actions) == {"boot": 10.0 + get_model("MeetingBoard 86").boot_seconds}
    assert not requests(actions)
    checks = agent.handle(TimerFired(100.0, "boot"))
    assert sorted(r.url for r in requests(checks)) == [
        "http://www.google.com/generate_204",
        "http://www.msftncsi.com/ncsi.txt",
    ]
    assert all(r.target == "connectivity" and not r.mtls for r in requests(checks))
    assert agent.phase is Phase.CHECKING


def test_boot_sequence_is_checks_then_ntp_then_dm_and_contacts_nothing_else() -> None:
    agent = make_agent()
    boot = agent.handle(PowerOn(0.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    first_check = requests(checks)[0]
    # one answer is not enough: the sequence waits for both checks
    assert agent.handle(HttpResponse(1.0, first_check.request_id, 200, "Microsoft NCSI")) == []
    second = requests(checks)[1]
    ntp = agent.handle(HttpResponse(1.1, second.request_id, 204))
    assert [a.host for a in ntp if isinstance(a, NtpQuery)] == [NTP_SERVERS[0]]
    assert agent.phase is Phase.TIME_SYNC
    query = next(a for a in ntp if isinstance(a, NtpQuery))
    dm = agent.handle(NtpReply(2.0, query.request_id, 5000.0))
    assert agent.clock_offset == 4998.0
    assert timers(dm)["ntp"] == 2.0 + 3600.0
    (enroll,) = requests(dm)
    assert enroll.url == f"{DM}/v1/enroll" and enroll.target == "dm" and not enroll.mtls
    hosts = {r.url.split("/")[2] for r in requests(checks)} | {NTP_SERVERS[0]}
    assert hosts <= BOOT_HOSTS


def test_ntp_falls_back_to_the_second_server_and_boot_goes_on_without_time() -> None:
    agent = make_agent()
    boot = agent.handle(PowerOn(0.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    ntp = answer_checks(agent, checks, 1.0)
    first = next(a for a in ntp if isinstance(a, NtpQuery))
    retry = agent.handle(RequestFailed(2.0, first.request_id, "timeout"))
    second = next(a for a in retry if isinstance(a, NtpQuery))
    assert second.host == NTP_SERVERS[1]
    dm = agent.handle(RequestFailed(3.0, second.request_id, "timeout"))
    assert agent.clock_offset is None
    assert [r.purpose for r in requests(dm)] == ["enroll"]


def test_failed_connectivity_checks_are_retried_and_nothing_goes_to_dm() -> None:
    agent = make_agent(checks_retry_s=60.0)
    boot = agent.handle(PowerOn(0.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    out: list[Action] = []
    for check in requests(checks):
        out += agent.handle(RequestFailed(5.0, check.request_id, "connection refused"))
    assert agent.phase is Phase.NO_NETWORK
    assert timers(out) == {"checks": 65.0}
    assert not requests(out)
    again = agent.handle(TimerFired(65.0, "checks"))
    assert len(requests(again, "connectivity")) == 2


def test_a_wrong_ncsi_body_does_not_count_as_connected() -> None:
    agent = make_agent()
    boot = agent.handle(PowerOn(0.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    out: list[Action] = []
    for check in requests(checks):
        out += agent.handle(HttpResponse(1.0, check.request_id, 200, "<html>captive portal</html>"))
    assert agent.phase is Phase.NO_NETWORK and not to_dm(out)


def test_proxy_test_site_is_contacted_only_when_enabled() -> None:
    assert not requests(boot_to_dm(make_agent()), "proxy_test")
    agent = make_agent()
    agent.handle(ProxyTestToggled(0.0, True))
    proxy = requests(boot_to_dm(agent), "proxy_test")
    assert [r.url for r in proxy] == ["http://www.google.com/"]


def test_vendor_links_only_on_user_action() -> None:
    agent = make_agent()
    actions = online(agent)
    assert not requests(actions, "vendor")
    (link,) = agent.handle(UserOpenedLink(200.0, "support"))
    assert isinstance(link, HttpRequest) and link.url == "https://support.yealink.com/"
    with pytest.raises(ValueError, match="unknown link"):
        agent.handle(UserOpenedLink(201.0, "cat-videos"))


def test_enrollment_stores_the_credential_then_heartbeats_telemetry_and_channel() -> None:
    agent = make_agent()
    (enroll,) = requests(boot_to_dm(agent), "dm")
    assert enroll.json == {"model": "MeetingBar A20", "csr_pem": "CSR"}
    actions = agent.handle(HttpResponse(100.0, enroll.request_id, 201, ENROLLED))
    assert actions[0] == StoreCredential("dev-1", "CERT", "CA")
    assert agent.enrolled and agent.device_id == "dev-1" and agent.phase is Phase.ONLINE
    purposes = [r.purpose for r in requests(actions)]
    assert purposes == ["heartbeat", "telemetry"]
    assert all(r.mtls for r in requests(actions))
    assert OpenChannel("wss://127.0.0.1:4431/v1/device/commands") in actions


def test_heartbeat_every_30_seconds_or_as_the_service_says() -> None:
    agent = make_agent()
    heartbeat = requests(online(agent))[0]
    nxt = agent.handle(HttpResponse(101.0, heartbeat.request_id, 200, {"next_heartbeat_s": 30}))
    assert nxt == [StartTimer("heartbeat", 131.0)]
    (again,) = agent.handle(TimerFired(131.0, "heartbeat"))
    assert isinstance(again, HttpRequest) and again.purpose == "heartbeat"
    assert agent.handle(HttpResponse(131.5, again.request_id, 200, {"next_heartbeat_s": 45})) == [
        StartTimer("heartbeat", 176.5)
    ]
    # a failed heartbeat is tried again at the next interval
    (third,) = agent.handle(TimerFired(176.5, "heartbeat"))
    assert agent.handle(RequestFailed(177.0, third.request_id, "timeout")) == [
        StartTimer("heartbeat", 222.0)
    ]


def test_telemetry_holds_only_dm09_fields_the_service_accepts() -> None:
    agent = make_agent(network=NetworkInfo("wifi", "10.1.2.3", "2001:db8::5", "ssid-7"))
    telemetry = next(r for r in requests(online(agent)) if r.purpose == "telemetry")
    assert telemetry.json is not None
    report = {k: v for k, v in telemetry.json.items() if k not in ENVELOPE_FIELDS}
    assert set(report) <= DM09_FIELDS and set(telemetry.json) - set(report) == {REPORT_ID}
    assert report["mac"] == "02:00:00:00:00:01"
    assert report["server_address"] == "127.0.0.1:4431"
    assert validate_telemetry(report)["network_type"] == "wifi"
    (periodic, timer) = agent.handle(TimerFired(1000.0, "telemetry"))
    assert isinstance(periodic, HttpRequest) and periodic.purpose == "telemetry"
    assert timer == StartTimer("telemetry", 1900.0)


def test_a_lost_telemetry_answer_is_sent_again_with_the_same_report_id() -> None:
    agent = make_agent()
    first = next(r for r in requests(online(agent)) if r.purpose == "telemetry")
    assert first.json is not None
    (again,) = agent.handle(RequestFailed(201.0, first.request_id, "timeout"))
    assert isinstance(again, HttpRequest) and again.json == first.json  # the same id, on retry
    (third,) = agent.handle(HttpResponse(202.0, again.request_id, 503, None))
    assert isinstance(third, HttpRequest) and third.json == first.json
    assert agent.handle(RequestFailed(203.0, third.request_id, "timeout")) == []  # 3 in all
    (periodic, _timer) = agent.handle(TimerFired(1000.0, "telemetry"))
    assert isinstance(periodic, HttpRequest) and periodic.json is not None
    assert periodic.json[REPORT_ID] != first.json[REPORT_ID]  # a new report, a new id
    assert agent.handle(HttpResponse(1001.0, periodic.request_id, 422, None)) == []  # refused


def test_call_state_changes_the_reported_status() -> None:
    agent = make_agent()
    online(agent)
    (report,) = agent.handle(CallStateChanged(200.0, True))
    assert isinstance(report, HttpRequest) and report.json is not None
    assert report.json["status"] == "in_call"
    assert agent.handle(CallStateChanged(201.0, True)) == []


def test_undeployed_device_retries_enrollment_with_backoff_and_sends_nothing_else() -> None:
    agent = make_agent()
    (enroll,) = requests(boot_to_dm(agent), "dm")
    seen: list[Action] = []
    now, delays = 10.0, []
    for _ in range(6):
        out = agent.handle(HttpResponse(now, enroll.request_id, 403, {"error": "Forbidden"}))
        seen += out
        at = timers(out)["enroll"]
        delays.append(at - now)
        now = at
        (enroll,) = agent.handle(TimerFired(now, "enroll"))  # type: ignore[assignment]
        assert isinstance(enroll, HttpRequest) and enroll.purpose == "enroll"
    assert delays == [30.0, 60.0, 120.0, 240.0, 480.0, 900.0]
    assert agent.phase is Phase.ENROLLING and not agent.enrolled
    assert not [a for a in seen if isinstance(a, HttpRequest | OpenChannel | StoreCredential)]


def test_jitter_is_given_not_drawn() -> None:
    identity = make_agent().identity
    agent = DeviceAgent(identity, AgentConfig(dm_url=DM), jitter=lambda d: d / 2)
    (enroll,) = requests(boot_to_dm(agent), "dm")
    assert timers(agent.handle(HttpResponse(10.0, enroll.request_id, 403))) == {"enroll": 25.0}


def test_revoked_certificate_sends_the_device_back_to_enrollment() -> None:
    agent = make_agent()
    heartbeat = requests(online(agent))[0]
    out = agent.handle(HttpResponse(101.0, heartbeat.request_id, 403, {"error": "Forbidden"}))
    assert ForgetCredential() in out and CloseDmSession() in out
    assert not agent.enrolled and agent.phase is Phase.ENROLL_WAIT
    assert timers(out) == {"enroll": 131.0}


def test_revocation_on_the_channel_also_goes_back_to_enrollment() -> None:
    agent = make_agent()
    online(agent)
    agent.handle(ChannelOpened(100.5))
    out = agent.handle(ChannelClosed(150.0, 4003))
    assert ForgetCredential() in out and not agent.enrolled


def test_a_dropped_channel_is_reopened_after_backoff() -> None:
    agent = make_agent()
    online(agent)
    agent.handle(ChannelOpened(100.5))
    assert agent.handle(ChannelClosed(150.0, 1006)) == [StartTimer("channel", 155.0)]
    assert agent.handle(TimerFired(155.0, "channel")) == [
        OpenChannel("wss://127.0.0.1:4431/v1/device/commands")
    ]


def test_dm_toggle_off_stops_every_dm_action_until_switched_on() -> None:
    agent = make_agent()
    first = online(agent)
    heartbeat = requests(first)[0]
    off = agent.handle(DmToggled(105.0, False))
    assert CloseDmSession() in off
    assert {a.name for a in off if isinstance(a, CancelTimer)} >= {"heartbeat", "telemetry"}
    assert agent.phase is Phase.DM_OFF
    # whatever happens while it is off, nothing goes to the DM service
    during: list[Action] = []
    during += agent.handle(HttpResponse(106.0, heartbeat.request_id, 200, {"next_heartbeat_s": 30}))
    for name in ("heartbeat", "telemetry", "enroll", "channel"):
        during += agent.handle(TimerFired(200.0, name))
    during += agent.handle(FaultInjected(210.0, "camera", "lens cover stuck"))
    during += agent.handle(CallStateChanged(220.0, True))
    during += agent.handle(ChannelMessage(230.0, {"type": "command", "kind": "config"}))
    during += agent.handle(ChannelClosed(240.0, 1006))
    assert during == []
    # the NTP and connectivity checks still run
    assert [a.host for a in agent.handle(TimerFired(3700.0, "ntp")) if isinstance(a, NtpQuery)]
    on = agent.handle(DmToggled(4000.0, True))
    assert [r.purpose for r in requests(on)] == ["heartbeat", "telemetry", "health"]


def test_dm_off_at_boot_means_no_enrollment_but_preconfigured_domains_still_run() -> None:
    agent = make_agent(dm_enabled=False)
    actions = boot_to_dm(agent)
    assert to_dm(actions) == [] and agent.phase is Phase.DM_OFF
    (enroll,) = requests(agent.handle(DmToggled(50.0, True)), "dm")
    assert enroll.purpose == "enroll"


def test_toggle_off_during_boot_holds_the_dm_contact_back() -> None:
    agent = make_agent()
    boot = agent.handle(PowerOn(0.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    agent.handle(DmToggled(1.0, False))
    ntp = answer_checks(agent, checks, 1.5)
    query = next(a for a in ntp if isinstance(a, NtpQuery))
    assert to_dm(agent.handle(NtpReply(2.0, query.request_id, 9.0))) == []
    assert agent.phase is Phase.DM_OFF


def test_faults_are_reported_as_health_events() -> None:
    agent = make_agent()
    online(agent)
    health, telemetry = requests(agent.handle(FaultInjected(300.0, "microphone", "no signal")))
    assert health.url.endswith("/v1/device/health")
    assert health.json == {"component": "microphone", "state": "fault", "detail": "no signal"}
    assert telemetry.json is not None and telemetry.json["status"] == "fault"
    cleared = requests(agent.handle(FaultCleared(400.0, "microphone")))
    assert cleared[0].json == {"component": "microphone", "state": "ok"}
    assert agent.status == "online"


def test_a_fault_injected_before_enrollment_is_reported_once_online() -> None:
    agent = make_agent()
    agent.handle(FaultInjected(0.0, "camera", "dark image"))
    health = [r for r in requests(online(agent)) if r.purpose == "health"]
    assert [h.json for h in health] == [
        {"component": "camera", "state": "fault", "detail": "dark image"}
    ]


def test_a_component_the_model_lacks_cannot_fail() -> None:
    agent = make_agent("MeetingBar A10")
    with pytest.raises(ValueError, match="no 'display'"):
        agent.handle(FaultInjected(1.0, "display", "cracked"))


def test_network_change_reruns_the_preconfigured_sequence() -> None:
    agent = make_agent()
    online(agent)
    out = agent.handle(NetworkChanged(500.0, NetworkInfo("wifi", "10.9.9.9")))
    assert CloseDmSession() in out
    assert len(requests(out, "connectivity")) == 2 and not to_dm(out)
    assert agent.phase is Phase.CHECKING
    ntp = answer_checks(agent, out, 501.0)
    query = next(a for a in ntp if isinstance(a, NtpQuery))
    resumed = agent.handle(NtpReply(502.0, query.request_id, 1.0))
    # already enrolled: straight back to the session, no new enrollment
    assert [r.purpose for r in requests(resumed)] == ["heartbeat", "telemetry"]
    assert requests(resumed)[1].json["ipv4_address"] == "10.9.9.9"  # type: ignore[index]


def test_answers_from_before_a_power_cycle_are_ignored() -> None:
    agent = make_agent()
    heartbeat = requests(online(agent))[0]
    agent.handle(PowerOn(1000.0))
    assert agent.handle(HttpResponse(1001.0, heartbeat.request_id, 403)) == []
    assert agent.enrolled


def test_a_command_of_an_unknown_kind_does_nothing() -> None:
    agent = make_agent()
    online(agent)
    command = {"type": "command", "command_id": "c1", "kind": "reformat", "payload": {}}
    assert agent.handle(ChannelMessage(300.0, command)) == []
    other = {"type": "telemetry", "command_id": "c1", "kind": "config", "payload": {}}
    assert agent.handle(ChannelMessage(300.0, other)) == []
    assert agent.ack("c1", {"applied": True}).message == {
        "type": "ack",
        "command_id": "c1",
        "result": {"applied": True},
    }


# -- firmware (MT-05): download, decrypt, verify, A/B install, health check, rollback ----------------
# Keys, signing and encryption are computation, not I/O: the tests make real packages in memory.

FW_MODEL = "MeetingBar A20"
FW_OLD = get_model(FW_MODEL).firmware_version  # 264.410.0.5
FW_NEW = "264.411.0.0"
RELEASE_KEY = firmware.generate_release_key()
RELEASE_PEM = firmware.public_key_pem(RELEASE_KEY).decode()


def fw_agent(**config: Any) -> DeviceAgent:
    agent = make_agent(FW_MODEL, release_key_pem=RELEASE_PEM, **config)
    online(agent)
    agent.handle(ChannelOpened(101.0))
    return agent


def package(
    version: str = FW_NEW,
    *,
    model: str = FW_MODEL,
    self_test: str = "pass",
    key: Ed25519PrivateKey = RELEASE_KEY,
) -> bytes:
    image = virtual_image(model, version, self_test=self_test)
    return firmware.pack(firmware.sign_image(key, model=model, version=version, image=image))


def install_command(command_id: int = 7, download_id: str = "dl1") -> tuple[ChannelMessage, bytes]:
    key = firmware.new_download_key()
    payload = {
        "op": "install",
        "rollout_id": "r1",
        "image_id": "img1",
        "model": FW_MODEL,
        "version": FW_NEW,
        "download": f"/v1/device/firmware/{download_id}",
        "key": base64.b64encode(key).decode(),
    }
    message = {"type": "command", "command_id": command_id, "kind": "firmware", "payload": payload}
    return ChannelMessage(200.0, message), key


def download(agent: DeviceAgent, blob: bytes, *, command_id: int = 7) -> list[Action]:
    """Deliver a firmware command and answer its download with `blob` encrypted as the service
    does; returns the agent's actions after the download."""
    command, key = install_command(command_id)
    (fetch,) = agent.handle(command)
    assert isinstance(fetch, DownloadFile)
    assert fetch.url == f"{DM}/v1/device/firmware/dl1" and fetch.target == "dm"
    data = firmware.encrypt_download(blob, key, context=b"dl1")
    return agent.handle(DownloadDone(201.0, fetch.request_id, 200, data))


def reboot_and_boot(agent: DeviceAgent, actions: list[Action], now: float) -> list[Action]:
    """Carry out a Reboot the agent asked for; returns what it does when its boot timer fires."""
    assert Reboot() in actions
    boot = agent.handle(PowerOn(now))
    return agent.handle(TimerFired(timers(boot)["boot"], "boot"))


def acks(actions: list[Action]) -> list[dict[str, Any]]:
    return [a.message for a in actions if isinstance(a, SendChannel) and a.message["type"] == "ack"]


def redeliver(agent: DeviceAgent, command_id: int = 7) -> list[Action]:
    """The service sends every unacknowledged command again when the device reconnects."""
    command, _key = install_command(command_id)
    return agent.handle(command)


def test_a_signed_image_is_installed_to_the_other_slot_and_reported_after_the_reboot() -> None:
    agent = fw_agent()
    installed = download(agent, package())
    progress = [a.message for a in installed if isinstance(a, SendChannel)]
    assert progress == [{"type": "progress", "command_id": 7, "stage": "downloaded"}]
    (install,) = [a for a in installed if isinstance(a, InstallImage)]
    assert install == InstallImage("b", FW_NEW, len(virtual_image(FW_MODEL, FW_NEW)))
    assert agent.firmware_version == FW_OLD  # not before the reboot
    rebooting = agent.handle(ImageInstalled(202.0, FW_NEW, True))
    assert CloseDmSession() in rebooting and rebooting[-1] == Reboot()
    booted = reboot_and_boot(agent, rebooting, 203.0)
    assert agent.firmware_version == FW_NEW
    assert agent.firmware.slots == [FW_OLD, FW_NEW] and agent.firmware.active == 1
    assert len(requests(booted, "connectivity")) == 2  # the health check passed: boot goes on
    session = online_again(agent, booted, 210.0)
    heartbeat = next(r for r in requests(session) if r.purpose == "heartbeat")
    assert heartbeat.json is not None and heartbeat.json["firmware_version"] == FW_NEW
    assert acks(redeliver(agent)) == [
        {"type": "ack", "command_id": 7, "result": {"ok": True, "version": FW_NEW}}
    ]


def online_again(agent: DeviceAgent, checks: list[Action], now: float) -> list[Action]:
    ntp = answer_checks(agent, checks, now)
    (query,) = [a for a in ntp if isinstance(a, NtpQuery)]
    return agent.handle(NtpReply(now + 0.1, query.request_id, 1_700_000_000.0))


def tampered_signature(blob: bytes) -> bytes:
    signed = firmware.unpack(blob)
    bad = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return firmware.pack(firmware.SignedImage(signed.manifest, bad, signed.image))


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (tampered_signature(package()), firmware.BAD_SIGNATURE),
        (package(key=firmware.generate_release_key()), firmware.BAD_SIGNATURE),
        (package(model="MeetingBar A30"), firmware.WRONG_MODEL),
        (package("264.400.0.0"), firmware.DOWNGRADE),
        (b"not a package", firmware.MALFORMED),
    ],
    ids=["tampered", "foreign-key", "wrong-model", "downgrade", "garbage"],
)
def test_a_refused_image_is_reported_with_its_reason_and_never_installed(
    blob: bytes, reason: str
) -> None:
    agent = fw_agent()
    actions = download(agent, blob)
    assert not [a for a in actions if isinstance(a, InstallImage | Reboot)]
    (ack,) = acks(actions)
    assert ack["command_id"] == 7
    assert ack["result"]["ok"] is False and ack["result"]["reason"] == reason
    assert ack["result"]["version"] == FW_OLD
    (health,) = [r for r in requests(actions) if r.purpose == "health"]
    assert health.json is not None
    assert health.json["component"] == "firmware_update" and health.json["state"] == "fault"
    assert health.json["detail"].startswith(reason)
    assert agent.firmware_version == FW_OLD and agent.firmware.slots == [FW_OLD, None]
    # delivered again: the same answer, and the fault is not reported twice
    again = redeliver(agent)
    assert acks(again) == [ack] and not requests(again)


def test_a_download_under_the_wrong_key_is_refused_as_undecryptable() -> None:
    agent = fw_agent()
    command, _key = install_command()
    (fetch,) = agent.handle(command)
    assert isinstance(fetch, DownloadFile)
    data = firmware.encrypt_download(package(), firmware.new_download_key(), context=b"dl1")
    (ack,) = acks(agent.handle(DownloadDone(201.0, fetch.request_id, 200, data)))
    assert ack["result"]["reason"] == firmware.DECRYPT_FAILED


def test_a_device_without_a_built_in_release_key_installs_nothing() -> None:
    agent = make_agent(FW_MODEL)
    online(agent)
    agent.handle(ChannelOpened(101.0))
    (ack,) = acks(download(agent, package()))
    assert ack["result"]["reason"] == "no-release-key"


def test_a_failed_download_is_reported() -> None:
    agent = fw_agent()
    command, _key = install_command()
    (fetch,) = agent.handle(command)
    assert isinstance(fetch, DownloadFile)
    (ack,) = acks(agent.handle(RequestFailed(201.0, fetch.request_id, "TimeoutError")))
    assert ack["result"] == {
        "ok": False,
        "reason": "download-failed",
        "detail": "TimeoutError",
        "version": FW_OLD,
    }


@pytest.mark.parametrize(
    ("self_test", "fault"), [("fail", None), ("pass", "camera")], ids=["self-test", "camera"]
)
def test_a_new_version_that_fails_its_health_check_after_boot_rolls_back_by_itself(
    self_test: str, fault: str | None
) -> None:
    agent = fw_agent()
    download(agent, package(self_test=self_test))
    rebooting = agent.handle(ImageInstalled(202.0, FW_NEW, True))
    if fault:
        agent.handle(FaultInjected(202.5, fault, "lens cracked"))
    boot = agent.handle(PowerOn(203.0))
    assert agent.firmware_version == FW_NEW  # booted the new slot, on trial
    back = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    assert back == [Reboot()]  # straight back, before any network traffic
    assert Reboot() in rebooting
    checks = reboot_and_boot(agent, back, 300.0)
    assert agent.firmware_version == FW_OLD and agent.firmware.active == 0
    assert agent.firmware.slots == [FW_OLD, FW_NEW]
    online_again(agent, checks, 310.0)
    (ack,) = acks(redeliver(agent))
    result = ack["result"]
    assert result["ok"] is False and result["reason"] == "health-check-failed"
    assert result["rolled_back"] is True
    assert result["version"] == FW_OLD and result["failed_version"] == FW_NEW
    assert ("camera" if fault else "self-test") in result["detail"]


def test_an_administrators_rollback_boots_the_previous_slot() -> None:
    agent = fw_agent()
    download(agent, package())
    booted = reboot_and_boot(agent, agent.handle(ImageInstalled(202.0, FW_NEW, True)), 203.0)
    online_again(agent, booted, 204.0)
    back = {"op": "rollback", "rollout_id": "r1", "version": FW_OLD}
    message = {"type": "command", "command_id": 8, "kind": "firmware", "payload": back}
    rebooting = agent.handle(ChannelMessage(300.0, message))
    reboot_and_boot(agent, rebooting, 301.0)
    assert agent.firmware_version == FW_OLD and agent.firmware.active == 0
    (ack,) = acks(agent.handle(ChannelMessage(310.0, message)))
    assert ack["result"] == {"ok": True, "version": FW_OLD, "rolled_back": True}
    missing = {**message, "command_id": 9, "payload": {**back, "version": "1.0"}}
    (refused,) = acks(agent.handle(ChannelMessage(311.0, missing)))
    assert refused["result"]["reason"] == "no-slot"


def test_a_command_delivered_again_mid_update_is_not_started_twice() -> None:
    agent = fw_agent()
    command, _key = install_command()
    (fetch,) = agent.handle(command)
    assert isinstance(fetch, DownloadFile)
    assert agent.handle(command) == []  # the download is still on its way
    other = {**command.message, "command_id": 99}
    (busy,) = acks(agent.handle(ChannelMessage(200.5, other)))
    assert busy["result"]["reason"] == "busy"
    # a network change drops the download: the command delivered again starts it anew
    agent.handle(NetworkChanged(201.0, NetworkInfo("wifi", "192.0.2.20", None, "lan-2")))
    (again,) = agent.handle(command)
    assert isinstance(again, DownloadFile) and again.request_id != fetch.request_id


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {"op": "format-disk"},
        {"op": "install", "download": "/v1/device/firmware/x"},
        {"op": "install", "download": "/v1/device/firmware/x", "key": "not base64!"},
        {"op": "install", "key": base64.b64encode(bytes(32)).decode()},
    ],
    ids=["no-payload", "unknown-op", "no-key", "bad-key", "no-download"],
)
def test_a_malformed_firmware_command_is_refused(payload: Any) -> None:
    agent = fw_agent()
    message = {"type": "command", "command_id": 5, "kind": "firmware", "payload": payload}
    actions = agent.handle(ChannelMessage(200.0, message))
    assert not [a for a in actions if isinstance(a, DownloadFile)]
    (ack,) = acks(actions)
    assert ack["result"]["reason"] == "bad-command"


def test_virtual_images_describe_their_self_test() -> None:
    assert image_self_test(virtual_image(FW_MODEL, FW_NEW)) == (True, "")
    assert image_self_test(virtual_image(FW_MODEL, FW_NEW, self_test="fail"))[0] is False
    assert image_self_test(b"\x7fELF real firmware") == (True, "")
    with pytest.raises(ValueError):
        virtual_image(FW_MODEL, FW_NEW, self_test="maybe")


# -- configuration (DM-13): applied whole or refused whole, in effect at once, kept on reboot ------

PROFILE = {
    "ntp.server": "ntp.hq.example",
    "network.proxy_test_enabled": True,
    "dm.heartbeat_s": 120,
    "dm.telemetry_s": 600,
    "log.level": "debug",
    "device.name": "Boardroom 4",
    "time_zone": "Asia/Tokyo",
    "audio.volume": 25,
}


def config_command(
    values: dict[str, Any], command_id: int = 11, version: str = "rooms@3"
) -> ChannelMessage:
    payload = {"version": version, "values": values}
    message = {"type": "command", "command_id": command_id, "kind": "config", "payload": payload}
    return ChannelMessage(300.0, message)


def channel_agent(model: str = "MeetingBar A20", **config: Any) -> DeviceAgent:
    agent = make_agent(model, **config)
    online(agent)
    agent.handle(ChannelOpened(101.0))
    return agent


def test_a_profile_is_applied_acknowledged_with_its_version_and_takes_effect_at_once() -> None:
    agent = channel_agent()
    actions = agent.handle(config_command(PROFILE))
    assert acks(actions) == [
        {"type": "ack", "command_id": 11, "result": {"applied": True, "version": "rooms@3"}}
    ]
    assert agent.configuration_version == "rooms@3" and agent.settings == PROFILE
    # the next time query goes to the pushed server, now
    (query,) = [a for a in actions if isinstance(a, NtpQuery)]
    assert query.host == "ntp.hq.example" and agent.ntp_servers[0] == "ntp.hq.example"
    assert CancelTimer("ntp") in actions
    # the proxy test switch: the proxy test site is reached
    assert [r.url for r in requests(actions, "proxy_test")] == ["http://www.google.com/"]
    # heartbeat and telemetry run at the pushed intervals
    assert timers(actions) == {"heartbeat": 420.0, "telemetry": 900.0}
    # the device reports the applied version, its pushed name and time zone (drift is reported)
    (report,) = [r for r in requests(actions, "dm") if r.purpose == "telemetry"]
    assert report.json is not None
    assert report.json["configuration_version"] == "rooms@3"
    assert report.json["device_name"] == "Boardroom 4"
    assert report.json["time_zone"] == "Asia/Tokyo"
    assert (
        validate_telemetry({k: v for k, v in report.json.items() if k != REPORT_ID})[
            "configuration_version"
        ]
        == "rooms@3"
    )


def test_the_pushed_heartbeat_interval_wins_over_the_service_default() -> None:
    agent = channel_agent()
    heartbeat = requests(agent.handle(TimerFired(131.0, "heartbeat")))[0]
    agent.handle(config_command({"dm.heartbeat_s": 90}))
    answer = HttpResponse(301.0, heartbeat.request_id, 200, {"next_heartbeat_s": 30})
    assert agent.handle(answer) == [StartTimer("heartbeat", 391.0)]
    (_report, timer) = agent.handle(TimerFired(1000.0, "telemetry"))
    assert timer == StartTimer("telemetry", 1900.0)  # no telemetry key pushed: unchanged


@pytest.mark.parametrize(
    ("values", "key", "reason"),
    [
        ({"audio.volume": 25, "contacts.list": "x"}, "contacts.list", "unknown configuration key"),
        ({"dm.heartbeat_s": 5}, "dm.heartbeat_s", "must be a whole number from 10 to 600"),
        ({"display.brightness": 40}, "display.brightness", "MeetingBar A20 has no display"),
        ({"ntp.server": "bad host!"}, "ntp.server", "must be a host name"),
        ({"log.level": "trace"}, "log.level", "must be one of debug, info, warning, error"),
        ({}, "values", "the command holds no values"),
    ],
)
def test_a_profile_with_a_key_the_device_refuses_is_refused_whole_naming_the_key(
    values: dict[str, Any], key: str, reason: str
) -> None:
    agent = channel_agent()
    whole = {"ntp.server": "ntp.hq.example", **values} if values else {}  # one good key beside
    actions = agent.handle(config_command(whole))
    (ack,) = acks(actions)
    assert ack["result"] == {"applied": False, "version": "rooms@3", "key": key, "reason": reason}
    assert len(actions) == 1  # nothing took effect: no time query, no report, no timer
    assert agent.settings == {} and agent.configuration_version is None
    assert agent.ntp_servers == NTP_SERVERS
    assert any(f"refused: {key} {reason}" in line for line in agent.log.lines())


def test_a_profile_for_a_display_is_applied_by_a_model_with_one() -> None:
    agent = channel_agent("MeetingBoard 65")
    actions = agent.handle(
        config_command({"display.brightness": 40, "display.touch_enabled": False})
    )
    assert acks(actions)[0]["result"]["applied"] is True


def test_a_profile_delivered_again_is_acknowledged_again_and_applied_once() -> None:
    agent = channel_agent()
    agent.handle(config_command(PROFILE))
    again = agent.handle(config_command(PROFILE))
    assert again == [agent.ack(11, {"applied": True, "version": "rooms@3"})]


def test_a_later_profile_adds_to_the_applied_values() -> None:
    agent = channel_agent()
    agent.handle(config_command({"ntp.server": "ntp.hq.example"}))
    actions = agent.handle(config_command({"audio.volume": 10}, command_id=12, version="audio@1"))
    assert agent.settings == {"ntp.server": "ntp.hq.example", "audio.volume": 10}
    assert agent.configuration_version == "audio@1"
    assert not [a for a in actions if isinstance(a, NtpQuery)]  # the server did not change


def test_a_reboot_keeps_the_applied_profile() -> None:
    agent = channel_agent()
    agent.handle(config_command(PROFILE))
    boot = agent.handle(PowerOn(500.0))
    checks = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    (query,) = [a for a in answer_checks(agent, checks, 600.0) if isinstance(a, NtpQuery)]
    assert query.host == "ntp.hq.example"
    # the pushed server does not answer: the preconfigured ones are still tried, in order
    (second,) = agent.handle(RequestFailed(601.0, query.request_id, "timeout"))
    assert isinstance(second, NtpQuery) and second.host == NTP_SERVERS[0]
    dm = agent.handle(NtpReply(602.0, second.request_id, 1_700_000_000.0))
    assert [r.url for r in requests(dm, "proxy_test")] == ["http://www.google.com/"]
    (report,) = [r for r in requests(dm, "dm") if r.purpose == "telemetry"]
    assert report.json is not None
    assert report.json["configuration_version"] == "rooms@3"
    assert report.json["device_name"] == "Boardroom 4"
    assert timers(dm)["telemetry"] == 602.0 + 600
    assert agent.settings == PROFILE and agent.log.level == "debug"


def test_connectivity_checks_switched_off_take_effect_at_the_next_boot() -> None:
    agent = channel_agent()
    agent.handle(config_command({"connectivity_check.enabled": False}))
    boot = agent.handle(PowerOn(500.0))
    (query,) = agent.handle(TimerFired(timers(boot)["boot"], "boot"))
    assert isinstance(query, NtpQuery)


# -- the agent's log and remote diagnosis (DM-05) --------------------------------------------------


def levels(lines: list[str]) -> set[str]:
    return {line.split(" ")[1] for line in lines}


def test_the_log_records_what_the_agent_did_at_its_level() -> None:
    agent = channel_agent()
    text = "\n".join(agent.log.lines())
    for step in ("power on", "connectivity checked", "clock set from", "enrolled as dev-1"):
        assert step in text
    assert levels(agent.log.lines()) == {"INFO"}  # info by default: no DEBUG line kept
    agent.handle(config_command({"log.level": "debug"}))
    agent.handle(TimerFired(400.0, "heartbeat"))
    assert "DEBUG" in levels(agent.log.lines())
    assert any("heartbeat: online" in line for line in agent.log.lines())
    agent.handle(config_command({"log.level": "warning"}, command_id=12, version="quiet@1"))
    agent.handle(TimerFired(500.0, "heartbeat"))
    assert levels(agent.log.lines()) <= {"WARNING", "ERROR"}


def test_the_log_is_bounded() -> None:
    agent = channel_agent(log_lines=5)
    for second in range(50):
        agent.handle(FaultInjected(400.0 + second, "camera", f"lens {second}"))
    assert len(agent.log) == 5


def only_request(actions: list[Action]) -> HttpRequest:
    (request,) = actions
    assert isinstance(request, HttpRequest)
    return request


def diagnostics_command(command_id: int = 21) -> ChannelMessage:
    payload = {"upload": "/v1/device/diagnostics"}
    message = {"type": "command", "command_id": command_id, "kind": "diagnostics"}
    return ChannelMessage(300.0, {**message, "payload": payload})


def test_a_diagnostics_command_uploads_only_diagnosis_fields_and_the_agents_log() -> None:
    agent = channel_agent(network=NetworkInfo("wifi", "10.1.2.3", "2001:db8::5", "ssid-7"))
    agent.handle(FaultInjected(200.0, "camera", "lens blocked"))
    upload = only_request(agent.handle(diagnostics_command()))
    assert isinstance(upload, HttpRequest) and upload.mtls and upload.method == "POST"
    assert upload.url == f"{DM}/v1/device/diagnostics" and upload.target == "dm"
    bundle = upload.json
    assert bundle is not None and tuple(bundle) == BUNDLE_FIELDS
    assert bundle["device_id"] == "dev-1" and bundle["mac"] == "02:00:00:00:00:01"
    assert bundle["ip_address"] == "10.1.2.3" and bundle["command_id"] == 21
    assert list(bundle["logs"]) == ["agent.log"]
    assert bundle["logs"]["agent.log"].splitlines() == agent.log.lines()
    assert "camera fault: lens blocked" in bundle["logs"]["agent.log"]
    # what the service checks an upload against
    device = Device(id="dev-1", mac="02:00:00:00:00:01")
    assert check_bundle(device, bundle)["logs"] == bundle["logs"]


def test_a_diagnostics_bundle_holds_the_log_at_the_pushed_level() -> None:
    agent = channel_agent()
    upload = only_request(agent.handle(diagnostics_command(21)))
    assert upload.json is not None and "DEBUG" not in upload.json["logs"]["agent.log"]
    agent.handle(HttpResponse(301.0, upload.request_id, 201, {"bundle_id": "b1"}))
    agent.handle(config_command({"log.level": "debug"}))
    upload = only_request(agent.handle(diagnostics_command(22)))
    assert (
        upload.json is not None
        and " DEBUG setting log.level = debug" in (upload.json["logs"]["agent.log"])
    )


def test_a_stored_bundle_needs_no_acknowledgement_and_a_refused_one_gets_one() -> None:
    agent = channel_agent()
    upload = only_request(agent.handle(diagnostics_command(21)))
    assert agent.handle(diagnostics_command(21)) == []  # delivered again while uploading
    assert agent.handle(HttpResponse(301.0, upload.request_id, 201, {"bundle_id": "b1"})) == []
    upload = only_request(agent.handle(diagnostics_command(22)))
    out = agent.handle(HttpResponse(302.0, upload.request_id, 422, {"field": "logs"}))
    assert acks(out) == [
        {"type": "ack", "command_id": 22, "result": {"uploaded": False, "status": 422}}
    ]


def test_a_lost_upload_is_made_again_when_the_command_comes_again() -> None:
    agent = channel_agent()
    upload = only_request(agent.handle(diagnostics_command(21)))
    assert agent.handle(RequestFailed(301.0, upload.request_id, "timeout")) == []
    (again,) = agent.handle(diagnostics_command(21))
    assert isinstance(again, HttpRequest) and again.purpose == "diagnostics"


def test_a_refused_certificate_on_upload_goes_back_to_enrollment() -> None:
    agent = channel_agent()
    upload = only_request(agent.handle(diagnostics_command(21)))
    out = agent.handle(HttpResponse(301.0, upload.request_id, 403, {"error": "Forbidden"}))
    assert ForgetCredential() in out and not agent.enrolled
