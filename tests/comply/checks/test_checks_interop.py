"""Negative controls of the `interop` checks (roomtrust/comply/checks/interop.py, MT-07): SIP
answers and refusals, call-record legs, the gateway's listeners, its TLS handshakes and H.323
answers, built with the gateway's own SIP, SDP and H.225.0 code."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from media_core.srtp import KeyMaterial, SrtpProfile
from roomtrust.comply.checks import interop
from roomtrust.comply.negative import Case, Controls, all_cases
from services.meeting.interop import h323, sdp, sip
from services.meeting.interop.client import H323Caller, OpenSocket

KEY = KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes)


def answer(body: str, content_type: str = "application/sdp", status: int = 200) -> sip.SipResponse:
    headers = sip.Headers()
    headers.add("Content-Type", content_type)
    return sip.SipResponse(headers, body.encode(), status, sip.REASONS[status])


GOOD_ANSWER = sdp.offer("127.0.0.1", 41000, KEY)
SETUP = H323Caller("127.0.0.1", 1300, Path("unused")).setup("sa-0123456789abcdef")
TOKENS: list[dict[str, Any]] = [
    {"tokenOID": h323.OID_H235_V3},
    h323.dh_token(h323.dh_public(h323.dh_private(secrets.token_bytes))),
]
CONNECT = h323.reply(SETUP, "connect", {"tokens": TOKENS})
BOTH = {"gatewayToCaller": KEY, "callerToGateway": KEY}
TLS_PORTS = [OpenSocket("tcp", "127.0.0.1", 5061, True), OpenSocket("tcp", "127.0.0.1", 1300, True)]

CONTROLS: list[Controls] = [
    Controls(
        interop.sip_call_answered_with_srtp,
        {"tls_version": "TLSv1.3", "response": answer(GOOD_ANSWER)},
        {
            "tls-1.1": ({"tls_version": "TLSv1.1"}, "TLS 1.2+"),
            "no-tls": ({"tls_version": None}, "TLS 1.2+"),
            "refused": ({"response": answer(GOOD_ANSWER, status=488)}, "answered 488"),
            "no-sdp": ({"response": answer(GOOD_ANSWER, content_type="text/plain")}, "no SDP"),
            "plain-rtp": (
                {"response": answer(sdp.offer("127.0.0.1", 41000, None, "RTP/AVP"))},
                "not SRTP",
            ),
            "no-key": ({"response": answer(sdp.offer("127.0.0.1", 41000, None))}, "no usable SDES"),
            "garbage": ({"response": answer("v=1\r\n")}, "does not parse"),
            "empty": (
                {"response": answer(sdp.offer("127.0.0.1", 0, KEY))},
                "selected no active media streams",
            ),
        },
    ),
    Controls(
        interop.sip_call_refused,
        {"response": answer("", status=488), "status": 488},
        {
            "answered": ({"response": answer(GOOD_ANSWER)}, "got 200"),
            "other-refusal": ({"response": answer("", status=403), "status": 416}, "got 403"),
        },
        single="one SIP answer: there is nothing to select",
    ),
    Controls(
        interop.encrypted_leg,
        {
            "legs": [
                {"transport": "tls+srtp", "encrypted": True},
                {"transport": "sips+srtp", "encrypted": True},
            ],
            "transport": "sips+srtp",
        },
        {
            "no-leg": ({"legs": [{"transport": "tls+srtp", "encrypted": True}]}, "no sips+srtp"),
            "plain-leg": (
                {"legs": [{"transport": "sips+srtp", "encrypted": False}]},
                "not marked encrypted",
            ),
            "unmarked-leg": ({"legs": [{"transport": "sips+srtp"}]}, "not marked encrypted"),
            "empty": ({"legs": []}, "selected no legs"),
        },
    ),
    Controls(
        interop.only_tls_listeners,
        {"sockets": TLS_PORTS, "tls_ports": [5061, 1300]},
        {
            "udp-sip": (
                {"sockets": [*TLS_PORTS, OpenSocket("udp", "127.0.0.1", 5060, True)]},
                "udp/127.0.0.1:5060",
            ),
            "plain-tcp": (
                {"sockets": [*TLS_PORTS, OpenSocket("tcp", "0.0.0.0", 5060, True)]},
                "tcp/0.0.0.0:5060",
            ),
            "h323-down": ({"sockets": TLS_PORTS[:1]}, "[1300] are not listening"),
            "no-ports-named": ({"tls_ports": []}, "selected no TLS ports"),
            "empty": ({"sockets": []}, "selected no sockets"),
        },
    ),
    Controls(
        interop.no_plain_sip_answer,
        {"answers": {"TCP 127.0.0.1:5061": None, "UDP 127.0.0.1:5061": None}},
        {
            "answered": (
                {"answers": {"TCP x": None, "UDP 127.0.0.1:5060": "SIP/2.0 200 OK"}},
                "UDP 127.0.0.1:5060: SIP/2.0 200 OK",
            ),
            "empty": ({"answers": {}}, "selected no plaintext SIP probes"),
        },
    ),
    Controls(
        interop.tls_below_1_2_refused,
        {"handshakes": {"port 5061": {"TLSv1.1": None, "TLSv1.2": "TLSv1.2"}}},
        {
            "tls-1.1": (
                {"handshakes": {"port 5061": {"TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2"}}},
                "accepted TLS 1.1",
            ),
            "no-tls-1.2": (
                {"handshakes": {"port 5061": {"TLSv1.1": None, "TLSv1.2": None}}},
                "did not negotiate",
            ),
            "empty": ({"handshakes": {}}, "selected no TLS handshakes"),
        },
    ),
    Controls(
        interop.h323_released,
        {"message": h323.release_complete(SETUP, "securityDenied"), "reason": "securityDenied"},
        {
            "other-reason": (
                {"message": h323.release_complete(SETUP, "noPermission")},
                "'noPermission'",
            ),
            "connected": ({"message": h323.reply(SETUP, "connect", {})}, "answered connect"),
        },
        single="one H.225.0 answer: there is nothing to select",
    ),
    Controls(
        interop.h323_connected_with_caller_keys,
        {"message": CONNECT, "keys": BOTH, "others_open": False},
        {
            "released": (
                {"message": h323.release_complete(SETUP, "securityDenied")},
                "not connect",
            ),
            "no-token": ({"message": h323.reply(SETUP, "connect", {"tokens": []})}, "H.235.6"),
            "one-way": ({"keys": {"gatewayToCaller": KEY}}, "both directions"),
            "eavesdropped": ({"others_open": True}, "without the caller's DH secret"),
            "empty": ({"keys": {}}, "selected no media keys"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)
