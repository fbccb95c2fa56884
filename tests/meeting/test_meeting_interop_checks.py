"""Negative controls of the MT-07 checks: each passes on good evidence and fails on evidence in
which its property is false, or on no evidence at all."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.interop import checks, h323, sdp, sip
from services.meeting.interop.client import H323Caller, OpenSocket

KEY = KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes)


def ok_response(
    body: str, content_type: str = "application/sdp", status: int = 200
) -> sip.SipResponse:
    headers = sip.Headers()
    headers.add("Content-Type", content_type)
    return sip.SipResponse(headers, body.encode(), status, sip.REASONS[status])


GOOD_ANSWER = sdp.offer("127.0.0.1", 41000, KEY)


def test_sip_call_answered_with_srtp() -> None:
    checks.sip_call_answered_with_srtp("TLSv1.3", ok_response(GOOD_ANSWER))
    broken: list[tuple[str | None, sip.SipResponse, str]] = [
        ("TLSv1.1", ok_response(GOOD_ANSWER), "TLS 1.2+"),
        (None, ok_response(GOOD_ANSWER), "TLS 1.2+"),
        ("TLSv1.3", ok_response(GOOD_ANSWER, status=488), "488"),
        ("TLSv1.3", ok_response(GOOD_ANSWER, content_type="text/plain"), "no SDP"),
        ("TLSv1.3", ok_response(sdp.offer("127.0.0.1", 41000, None, "RTP/AVP")), "not SRTP"),
        ("TLSv1.3", ok_response(sdp.offer("127.0.0.1", 41000, None)), "no usable SDES"),
        ("TLSv1.3", ok_response(sdp.offer("127.0.0.1", 0, KEY)), "no active"),
        ("TLSv1.3", ok_response("v=1\r\n"), "does not parse"),
    ]
    for version, response, words in broken:
        with pytest.raises(checks.InteropCheckFailed, match=words):
            checks.sip_call_answered_with_srtp(version, response)


def test_sip_call_refused() -> None:
    checks.sip_call_refused(ok_response("", status=488), 488)
    with pytest.raises(checks.InteropCheckFailed, match="got 200"):
        checks.sip_call_refused(ok_response(GOOD_ANSWER), 488)
    with pytest.raises(checks.InteropCheckFailed, match="got 403"):
        checks.sip_call_refused(ok_response("", status=403), 416)


def test_encrypted_leg() -> None:
    good = [
        {"transport": "tls+srtp", "encrypted": True},
        {"transport": "sips+srtp", "encrypted": True},
    ]
    checks.encrypted_leg(good, "sips+srtp")
    for legs, words in [
        ([], "no legs"),
        ([{"transport": "tls+srtp", "encrypted": True}], "no sips\\+srtp leg"),
        ([{"transport": "sips+srtp", "encrypted": False}], "not marked encrypted"),
        ([{"transport": "sips+srtp"}], "not marked encrypted"),
    ]:
        with pytest.raises(checks.InteropCheckFailed, match=words):
            checks.encrypted_leg(legs, "sips+srtp")


def test_only_tls_listeners() -> None:
    good = [OpenSocket("tcp", "127.0.0.1", 5061, True), OpenSocket("tcp", "127.0.0.1", 1300, True)]
    checks.only_tls_listeners(good, [5061, 1300])
    for sockets, words in [
        ([], "no sockets"),
        ([*good, OpenSocket("udp", "127.0.0.1", 5060, True)], "udp/127.0.0.1:5060"),
        ([*good, OpenSocket("tcp", "0.0.0.0", 5060, True)], "tcp/0.0.0.0:5060"),
        (good[:1], "not listening"),
    ]:
        with pytest.raises(checks.InteropCheckFailed, match=words):
            checks.only_tls_listeners(sockets, [5061, 1300])
    with pytest.raises(checks.InteropCheckFailed, match="no TLS ports"):
        checks.only_tls_listeners(good, [])


def test_no_plain_sip_answer() -> None:
    checks.no_plain_sip_answer({"TCP 127.0.0.1:5061": None, "UDP 127.0.0.1:5061": None})
    with pytest.raises(
        checks.InteropCheckFailed, match=re.escape("UDP 127.0.0.1:5060: SIP/2.0 200 OK")
    ):
        checks.no_plain_sip_answer({"TCP x": None, "UDP 127.0.0.1:5060": "SIP/2.0 200 OK"})
    with pytest.raises(checks.InteropCheckFailed, match="nothing to check"):
        checks.no_plain_sip_answer({})


def test_tls_below_1_2_refused() -> None:
    checks.tls_below_1_2_refused({"port 5061": {"TLSv1.1": None, "TLSv1.2": "TLSv1.2"}})
    for handshakes, words in [
        ({}, "nothing to check"),
        ({"port 5061": {"TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2"}}, "accepted TLS 1.1"),
        ({"port 5061": {"TLSv1.1": None, "TLSv1.2": None}}, "did not negotiate"),
    ]:
        with pytest.raises(checks.InteropCheckFailed, match=words):
            checks.tls_below_1_2_refused(handshakes)


def _setup() -> h323.H225:
    return H323Caller("127.0.0.1", 1300, Path("unused")).setup("sa-0123456789abcdef")


def test_h323_released() -> None:
    setup = _setup()
    checks.h323_released(h323.release_complete(setup, "securityDenied"), "securityDenied")
    with pytest.raises(checks.InteropCheckFailed, match="'noPermission'"):
        checks.h323_released(h323.release_complete(setup, "noPermission"), "securityDenied")
    with pytest.raises(checks.InteropCheckFailed, match="connect"):
        checks.h323_released(h323.reply(setup, "connect", {}), "securityDenied")


def test_h323_connected_with_caller_keys() -> None:
    setup = _setup()
    tokens: list[dict[str, Any]] = [
        {"tokenOID": h323.OID_H235_V3},
        h323.dh_token(h323.dh_public(h323.dh_private(secrets.token_bytes))),
    ]
    connect = h323.reply(setup, "connect", {"tokens": tokens})
    both = {"gatewayToCaller": KEY, "callerToGateway": KEY}
    checks.h323_connected_with_caller_keys(connect, both, others_open=False)
    for message, keys, others, words in [
        (h323.release_complete(setup, "securityDenied"), both, False, "not connect"),
        (h323.reply(setup, "connect", {"tokens": []}), both, False, "H.235.6"),
        (connect, {"gatewayToCaller": KEY}, False, "both directions"),
        (connect, both, True, "without the caller's DH secret"),
    ]:
        with pytest.raises(checks.InteropCheckFailed, match=words):
            checks.h323_connected_with_caller_keys(message, keys, others)
