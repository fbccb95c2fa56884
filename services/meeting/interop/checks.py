"""The checks of MT-07 as plain functions of their evidence (used by features/steps/interop_steps.py).

A step gathers evidence from the live gateway (SIP responses, H.225.0 messages, call-record legs,
the sockets the process holds, TLS handshakes) and hands it to one of these; a check raises
`InteropCheckFailed` with a reason a reader of the compliance report can act on, or returns. Each
one has a negative control in tests/meeting/test_meeting_interop_checks.py that feeds it evidence
in which the property is false, or empty, and shows that it fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.meeting.interop import h323, sdp, sip
from services.meeting.interop.client import OpenSocket

SECURE_TLS = ("TLSv1.2", "TLSv1.3")


class InteropCheckFailed(AssertionError):
    """The evidence shows the checked property is false; the message says how."""


def _require(condition: object, reason: str) -> None:
    if not condition:
        raise InteropCheckFailed(reason)


def sip_call_answered_with_srtp(tls_version: str | None, response: sip.SipResponse) -> None:
    """A SIP call over TLS 1.2+ was answered 200 with an SDP answer that is SRTP with SDES keys."""
    _require(tls_version in SECURE_TLS, f"the call did not run over TLS 1.2+ ({tls_version})")
    _require(response.status == 200, f"the call was answered {response.status}, not 200")
    _require(
        (response.header("Content-Type") or "").startswith("application/sdp"),
        "the 200 carries no SDP answer",
    )
    try:
        answer = sdp.Session.parse(response.body.decode("utf-8", "replace"))
    except sdp.SdpError as exc:
        raise InteropCheckFailed(f"the SDP answer does not parse: {exc}") from exc
    active = [m for m in answer.media if m.port != 0]
    _require(active, "the answer has no active media stream")
    for media in active:
        _require(
            media.proto in sdp.SRTP_PROTOS,
            f"the answer's {media.kind} stream is {media.proto}, not SRTP",
        )
        keys = [sdp.parse_crypto(v) for v in media.values("crypto")]
        _require(
            any(isinstance(k, sdp.Crypto) for k in keys),
            f"the answer's {media.kind} stream has no usable SDES key",
        )


def sip_call_refused(response: sip.SipResponse, status: int) -> None:
    """The SIP call was refused with exactly this status (and so never answered 200)."""
    _require(
        response.status == status,
        f"expected {status} {sip.REASONS.get(status, '')}, got {response.status} {response.reason}",
    )


def encrypted_leg(legs: Sequence[Mapping[str, Any]], transport: str) -> None:
    """The conference's call record holds a leg of this protocol, and it is marked encrypted."""
    _require(legs, "the conference's call record has no legs: nothing to check")
    found = [leg for leg in legs if leg.get("transport") == transport]
    _require(found, f"no {transport} leg among {[leg.get('transport') for leg in legs]}")
    _require(
        all(leg.get("encrypted") is True for leg in found),
        f"a {transport} leg is not marked encrypted",
    )


def only_tls_listeners(sockets: Sequence[OpenSocket], tls_ports: Sequence[int]) -> None:
    """The process listens on the given TLS ports and on nothing else, TCP or UDP."""
    _require(sockets, "the process holds no sockets: nothing to check")
    _require(tls_ports, "no TLS ports were named")
    extra = [f"{s.kind}/{s.host}:{s.port}" for s in sockets if s.kind != "tcp"]
    extra += [
        f"tcp/{s.host}:{s.port}" for s in sockets if s.kind == "tcp" and s.port not in tls_ports
    ]
    _require(not extra, f"the process has other listeners: {', '.join(extra)}")
    missing = set(tls_ports) - {s.port for s in sockets}
    _require(not missing, f"the TLS ports {sorted(missing)} are not listening")


def no_plain_sip_answer(answers: Mapping[str, str | None]) -> None:
    """No plaintext SIP probe (TCP or UDP, per port) got a SIP answer."""
    _require(answers, "no plaintext SIP probe was made: nothing to check")
    answered = [f"{where}: {status}" for where, status in answers.items() if status is not None]
    _require(not answered, f"plaintext SIP was answered: {'; '.join(answered)}")


def tls_below_1_2_refused(handshakes: Mapping[str, Mapping[str, str | None]]) -> None:
    """Per port, TLS 1.1 was refused (no version) and TLS 1.2 was negotiated."""
    _require(handshakes, "no TLS handshake was attempted: nothing to check")
    for port, outcome in handshakes.items():
        _require(
            outcome.get("TLSv1.1") is None,
            f"{port} accepted TLS 1.1 ({outcome.get('TLSv1.1')})",
        )
        _require(
            outcome.get("TLSv1.2") == "TLSv1.2",
            f"{port} did not negotiate TLS 1.2 ({outcome.get('TLSv1.2')})",
        )


def h323_released(message: h323.H225, reason: str) -> None:
    """The gateway answered the Setup with ReleaseComplete and this reason."""
    _require(
        message.name == "releaseComplete",
        f"the gateway answered {message.name}, not releaseComplete",
    )
    got = message.body.get("reason")
    _require(got == reason, f"the release reason is {got!r}, not {reason!r}")


def h323_connected_with_caller_keys(
    message: h323.H225, keys: Mapping[str, object], others_open: bool
) -> None:
    """The gateway connected with H.235.6 tokens and media keys for both directions that the
    caller opened, and that a party without the caller's Diffie-Hellman secret could not."""
    _require(message.name == "connect", f"the gateway answered {message.name}, not connect")
    offer = h323.dh_offer(message.body.get("tokens"))
    _require(not isinstance(offer, str), f"the Connect has no usable H.235.6 token: {offer}")
    _require(
        set(keys) == {"gatewayToCaller", "callerToGateway"},
        f"the caller opened media keys for {sorted(keys)}, not both directions",
    )
    _require(not others_open, "the media keys opened without the caller's DH secret")
