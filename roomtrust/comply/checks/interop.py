"""Checks of features/interop.feature (MT-07) over evidence from the live interop gateway: SIP
responses, H.225.0 messages, the conference's call-record legs, the sockets the gateway process
holds and the TLS handshakes its ports took.

A step gathers the evidence and hands it to one of these; a check raises `CheckFailed` with a
reason a reader of the compliance report can act on, or returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from roomtrust.comply.checks import CheckFailed, check, require, selected
from services.meeting.interop import h323, sdp, sip
from services.meeting.interop.client import OpenSocket

SECURE_TLS = ("TLSv1.2", "TLSv1.3")


@check("interop")
def sip_call_answered_with_srtp(tls_version: str | None, response: sip.SipResponse) -> None:
    """A SIP call over TLS 1.2+ was answered 200 with an SDP answer that is SRTP with SDES keys."""
    require(tls_version in SECURE_TLS, f"the call did not run over TLS 1.2+ ({tls_version})")
    require(response.status == 200, f"the call was answered {response.status}, not 200")
    require(
        (response.header("Content-Type") or "").startswith("application/sdp"),
        "the 200 carries no SDP answer",
    )
    try:
        answer = sdp.Session.parse(response.body.decode("utf-8", "replace"))
    except sdp.SdpError as exc:
        raise CheckFailed(f"the SDP answer does not parse: {exc}") from exc
    active = [m for m in answer.media if m.port != 0]
    selected(active, "active media streams in the answer")
    for media in active:
        require(
            media.proto in sdp.SRTP_PROTOS,
            f"the answer's {media.kind} stream is {media.proto}, not SRTP",
        )
        keys = [sdp.parse_crypto(v) for v in media.values("crypto")]
        require(
            any(isinstance(k, sdp.Crypto) for k in keys),
            f"the answer's {media.kind} stream has no usable SDES key",
        )


@check("interop")
def sip_call_refused(response: sip.SipResponse, status: int) -> None:
    """The SIP call was refused with exactly this status (and so never answered 200)."""
    require(
        response.status == status,
        f"expected {status} {sip.REASONS.get(status, '')}, got {response.status} {response.reason}",
    )


@check("interop")
def encrypted_leg(legs: Sequence[Mapping[str, Any]], transport: str) -> None:
    """The conference's call record holds a leg of this protocol, and it is marked encrypted."""
    selected(legs, "legs in the conference's call record")
    found = [leg for leg in legs if leg.get("transport") == transport]
    require(found, f"no {transport} leg among {[leg.get('transport') for leg in legs]}")
    require(
        all(leg.get("encrypted") is True for leg in found),
        f"a {transport} leg is not marked encrypted",
    )


@check("interop")
def only_tls_listeners(sockets: Sequence[OpenSocket], tls_ports: Sequence[int]) -> None:
    """The process listens on the given TLS ports and on nothing else, TCP or UDP."""
    selected(sockets, "sockets of the gateway process")
    selected(tls_ports, "TLS ports named")
    extra = [f"{s.kind}/{s.host}:{s.port}" for s in sockets if s.kind != "tcp"]
    extra += [
        f"tcp/{s.host}:{s.port}" for s in sockets if s.kind == "tcp" and s.port not in tls_ports
    ]
    require(not extra, f"the process has other listeners: {', '.join(extra)}")
    missing = set(tls_ports) - {s.port for s in sockets}
    require(not missing, f"the TLS ports {sorted(missing)} are not listening")


@check("interop")
def no_plain_sip_answer(answers: Mapping[str, str | None]) -> None:
    """No plaintext SIP probe (TCP or UDP, per port) got a SIP answer."""
    selected(answers, "plaintext SIP probes")
    answered = [f"{where}: {status}" for where, status in answers.items() if status is not None]
    require(not answered, f"plaintext SIP was answered: {'; '.join(answered)}")


@check("interop")
def tls_below_1_2_refused(handshakes: Mapping[str, Mapping[str, str | None]]) -> None:
    """Per port, TLS 1.1 was refused (no version) and TLS 1.2 was negotiated."""
    selected(handshakes, "TLS handshakes")
    for port, outcome in handshakes.items():
        require(
            outcome.get("TLSv1.1") is None,
            f"{port} accepted TLS 1.1 ({outcome.get('TLSv1.1')})",
        )
        require(
            outcome.get("TLSv1.2") == "TLSv1.2",
            f"{port} did not negotiate TLS 1.2 ({outcome.get('TLSv1.2')})",
        )


@check("interop")
def h323_released(message: h323.H225, reason: str) -> None:
    """The gateway answered the Setup with ReleaseComplete and this reason."""
    require(
        message.name == "releaseComplete",
        f"the gateway answered {message.name}, not releaseComplete",
    )
    got = message.body.get("reason")
    require(got == reason, f"the release reason is {got!r}, not {reason!r}")


@check("interop")
def h323_connected_with_caller_keys(
    message: h323.H225, keys: Mapping[str, object], others_open: bool
) -> None:
    """The gateway connected with H.235.6 tokens and media keys for both directions that the
    caller opened, and that a party without the caller's Diffie-Hellman secret could not."""
    require(message.name == "connect", f"the gateway answered {message.name}, not connect")
    offer = h323.dh_offer(message.body.get("tokens"))
    require(not isinstance(offer, str), f"the Connect has no usable H.235.6 token: {offer}")
    selected(keys, "media keys the caller opened")
    require(
        set(keys) == {"gatewayToCaller", "callerToGateway"},
        f"the caller opened media keys for {sorted(keys)}, not both directions",
    )
    require(not others_open, "the media keys opened without the caller's DH secret")
