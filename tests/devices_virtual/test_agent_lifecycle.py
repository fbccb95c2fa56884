"""The agent's identity lifecycle, sans-IO: certificate renewal before expiry on its NTP-set clock,
and the remote actions of the command channel (reboot, factory reset, log level, renewal wave)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from devices_virtual.agent import (
    Action,
    AgentConfig,
    ChannelMessage,
    ChannelOpened,
    CloseDmSession,
    DeviceAgent,
    DeviceIdentity,
    ForgetCredential,
    HttpRequest,
    HttpResponse,
    KeyReady,
    NewKey,
    NtpQuery,
    NtpReply,
    OpenChannel,
    PowerOn,
    Reboot,
    SendChannel,
    StartTimer,
    StoreCredential,
    TimerFired,
    WipeIdentity,
)
from devices_virtual.models import get_model

DM = "https://127.0.0.1:4431"
DAY = 86400.0
EPOCH = 1_700_000_000.0  # what the time server says at boot


def iso(posix: float) -> str:
    return dt.datetime.fromtimestamp(posix, dt.UTC).isoformat()


def make_agent(**config: Any) -> DeviceAgent:
    identity = DeviceIdentity(
        mac="02:00:00:00:00:01",
        serial_number="SN0001",
        model=get_model("MeetingBar A20"),
        name="Room 1",
        csr_pem="CSR-FACTORY",
    )
    return DeviceAgent(identity, AgentConfig(dm_url=DM, connectivity_checks=False, **config))


def of(kind: type, actions: list[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def boot(agent: DeviceAgent, now: float, server_time: float) -> list[Action]:
    """Power on, boot, answer the time query: the actions towards DM that follow."""
    started = agent.handle(PowerOn(now))
    (boot_timer,) = [a for a in of(StartTimer, started) if a.name == "boot"]
    (query,) = of(NtpQuery, agent.handle(TimerFired(boot_timer.at, "boot")))
    return agent.handle(NtpReply(boot_timer.at, query.request_id, server_time))


def enrolled(agent: DeviceAgent, days_left: float) -> tuple[list[Action], float]:
    """Boot and enroll with a certificate `days_left` days from its end; returns the actions and
    the time of the answer (on the driver's clock, where the boot's NTP reply set EPOCH)."""
    actions = boot(agent, 0.0, EPOCH)
    (enroll,) = of(HttpRequest, actions)
    assert enroll.url.endswith("/v1/enroll") and enroll.json["csr_pem"] == "CSR-FACTORY"
    now = agent.wall_time
    assert now is not None
    body = {
        "device_id": "dev-1",
        "certificate_pem": "CERT-1",
        "ca_pem": "CA",
        "not_after": iso(now + days_left * DAY),
    }
    at = 1.0
    return agent.handle(HttpResponse(at, enroll.request_id, 201, body)), at


def ntp_again(agent: DeviceAgent, now: float, server_time: float) -> list[Action]:
    (query,) = of(NtpQuery, agent.handle(TimerFired(now, "ntp")))
    return agent.handle(NtpReply(now, query.request_id, server_time))


def test_a_certificate_with_more_than_30_days_left_is_not_renewed_yet() -> None:
    agent = make_agent()
    actions, at = enrolled(agent, 45)
    assert not of(NewKey, actions)
    renew = [a for a in of(StartTimer, actions) if a.name == "renew"]
    assert renew and renew[0].at <= at + DAY  # looked at again within a day
    assert not of(NewKey, agent.handle(TimerFired(renew[0].at, "renew")))


def test_30_days_before_the_end_the_agent_renews_with_a_new_key_over_mtls() -> None:
    agent = make_agent()
    actions, at = enrolled(agent, 31)
    assert not of(NewKey, actions)
    # a day later (the time server says so), the certificate has 30 days left
    later = at + 3600
    (new_key,) = of(NewKey, ntp_again(agent, later, EPOCH + DAY + 3600))
    (renewal,) = agent.handle(KeyReady(later, new_key.request_id, "CSR-NEW"))
    assert isinstance(renewal, HttpRequest)
    assert renewal.url == DM + "/v1/device/certificate" and renewal.method == "POST"
    assert renewal.mtls and renewal.json == {"csr_pem": "CSR-NEW"}

    wall = agent.wall_time or 0.0
    body = {"certificate_pem": "CERT-2", "ca_pem": "CA", "not_after": iso(wall + 31 * DAY)}
    done = agent.handle(HttpResponse(later, renewal.request_id, 201, body))
    (stored,) = of(StoreCredential, done)
    assert stored.new_key and stored.certificate_pem == "CERT-2"
    # the session moves to the new certificate at once: the channel reopens, a heartbeat goes
    kinds = [type(a) for a in done]
    assert kinds.index(StoreCredential) < kinds.index(CloseDmSession) < kinds.index(OpenChannel)
    assert [r.purpose for r in of(HttpRequest, done)] == ["heartbeat"]
    assert not of(NewKey, done) and agent.renewals == 1


def test_a_failed_renewal_is_tried_again_later_and_a_refused_one_means_enroll_again() -> None:
    agent = make_agent(renew_retry_s=600)
    actions, at = enrolled(agent, 10)
    (new_key,) = of(NewKey, actions)
    (renewal,) = agent.handle(KeyReady(at, new_key.request_id, "CSR-NEW"))
    retry = agent.handle(HttpResponse(at + 1, renewal.request_id, 503, {}))
    assert [(t.name, t.at) for t in of(StartTimer, retry)] == [("renew", at + 601)]
    assert not of(StoreCredential, retry)

    (new_key,) = of(NewKey, agent.handle(TimerFired(at + 601, "renew")))
    (renewal,) = agent.handle(KeyReady(at + 601, new_key.request_id, "CSR-NEWER"))
    refused = agent.handle(HttpResponse(at + 602, renewal.request_id, 403, {}))
    assert of(ForgetCredential, refused) and not agent.enrolled


def channel_command(agent: DeviceAgent, now: float, command_id: int, kind: str, **payload: Any):
    message = {"type": "command", "command_id": command_id, "kind": kind, "payload": payload}
    return agent.handle(ChannelMessage(now, message))


def online(agent: DeviceAgent) -> float:
    _actions, at = enrolled(agent, 300)
    agent.handle(ChannelOpened(at))
    return at


def test_reboot_is_acknowledged_then_carried_out_and_keeps_the_configuration() -> None:
    agent = make_agent()
    at = online(agent)
    agent.settings["device.name"] = "Board room"
    actions = channel_command(agent, at, 5, "reboot")
    (ack,) = of(SendChannel, actions)
    assert ack.message == {"type": "ack", "command_id": 5, "result": {"rebooting": True}}
    assert isinstance(actions[-1], Reboot) and actions.index(ack) < len(actions) - 1
    assert agent.settings["device.name"] == "Board room" and agent.enrolled
    # delivered again after the reboot (the acknowledgement was lost): acknowledged, not redone
    again = channel_command(agent, at + 60, 5, "reboot")
    assert [type(a) for a in again] == [SendChannel]


def test_log_level_takes_effect_and_an_unknown_level_is_refused_naming_it() -> None:
    agent = make_agent()
    at = online(agent)
    (ack,) = of(SendChannel, channel_command(agent, at, 6, "log_level", level="debug"))
    assert ack.message["result"] == {"applied": True, "level": "debug"}
    assert agent.log.level == "debug"
    (ack,) = of(SendChannel, channel_command(agent, at, 7, "log_level", level="loud"))
    assert ack.message["result"]["applied"] is False and ack.message["result"]["key"] == "level"
    assert agent.log.level == "debug"


def test_a_renewal_wave_renews_at_once_whatever_time_is_left_and_only_once() -> None:
    agent = make_agent()
    at = online(agent)  # 300 days left: no renewal of its own
    actions = channel_command(agent, at, 8, "renew_certificate")
    (ack,) = of(SendChannel, actions)
    assert ack.message == {"type": "ack", "command_id": 8, "result": {"renewing": True}}
    (new_key,) = of(NewKey, actions)
    assert actions.index(ack) < actions.index(new_key)
    # the same wave delivered again, or a second one while this renewal runs: no second key
    assert not of(NewKey, channel_command(agent, at, 8, "renew_certificate"))
    assert not of(NewKey, channel_command(agent, at, 9, "renew_certificate"))
    (renewal,) = agent.handle(KeyReady(at, new_key.request_id, "CSR-WAVE"))
    assert renewal.url == DM + "/v1/device/certificate" and renewal.mtls


def test_a_renewal_wave_reaching_a_device_without_a_certificate_is_refused() -> None:
    agent = make_agent()
    boot(agent, 0.0, EPOCH)  # asked to enroll, no answer yet
    actions = channel_command(agent, 1.0, 3, "renew_certificate")
    (ack,) = of(SendChannel, actions)
    assert ack.message["result"] == {"renewing": False, "reason": "no certificate to renew"}
    assert not of(NewKey, actions)


def test_a_factory_reset_wipes_the_identity_and_the_device_only_asks_to_enroll_again() -> None:
    agent = make_agent()
    at = online(agent)
    agent.settings["device.name"] = "Board room"
    actions = channel_command(agent, at, 8, "factory_reset")
    kinds = [type(a) for a in actions]
    assert kinds[0] is SendChannel and actions[0].message["result"] == {"reset": True}
    assert WipeIdentity in kinds and kinds[-1] is Reboot
    assert agent.settings == {} and agent.device_id is None and not agent.enrolled

    # after the boot: a new key first, then an enrollment with it, and nothing else to DM
    after = boot(agent, at + 1, EPOCH + 10)
    assert not of(HttpRequest, after)
    (new_key,) = of(NewKey, after)
    (enroll,) = of(HttpRequest, agent.handle(KeyReady(at + 2, new_key.request_id, "CSR-RESET")))
    assert enroll.url.endswith("/v1/enroll") and not enroll.mtls
    assert enroll.json["csr_pem"] == "CSR-RESET"
    refused = agent.handle(HttpResponse(at + 3, enroll.request_id, 403, {}))
    assert not of(HttpRequest, refused) and not of(OpenChannel, refused)
    (retry,) = [t for t in of(StartTimer, refused) if t.name == "enroll"]
    # deployed again by an administrator: the next attempt enrolls, with the new key
    (enroll,) = of(HttpRequest, agent.handle(TimerFired(retry.at, "enroll")))
    body = {"device_id": "dev-1", "certificate_pem": "C", "ca_pem": "CA", "not_after": iso(EPOCH)}
    (stored,) = of(
        StoreCredential, agent.handle(HttpResponse(retry.at, enroll.request_id, 201, body))
    )
    assert stored.new_key
