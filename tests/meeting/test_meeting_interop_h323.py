"""H.225.0 framing and the H.235.6 admission decision of the interop gateway, without I/O."""

from __future__ import annotations

import secrets
import struct
from typing import Any

import pytest

from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.interop import h323

CONFERENCE = "sa-0123456789abcdef"


def secure_setup(**overrides: Any) -> tuple[h323.H225, int]:
    private = h323.dh_private(secrets.token_bytes)
    options: dict[str, Any] = {
        "call_reference": 77,
        "call_identifier": secrets.token_hex(16),
        "destination": f"{CONFERENCE}*4321",
        "source": "Cisco SX80",
        "tokens": [{"tokenOID": h323.OID_H235_V3}, h323.dh_token(h323.dh_public(private))],
        "channels": [h323.encrypted_audio("192.0.2.5", 5004)],
    }
    options.update(overrides)
    return h323.setup_message(**options), private


def frame(message: h323.H225) -> h323.H225:
    payloads = h323.TpktStream().feed(message.encode())
    assert len(payloads) == 1 and isinstance(payloads[0], bytes)
    return h323.H225.decode(payloads[0])


def test_tpkt_and_q931_framing_are_real() -> None:
    setup, _ = secure_setup()
    data = setup.encode()
    version, reserved, length = struct.unpack_from("!BBH", data)
    assert (version, reserved, length) == (3, 0, len(data))
    q931 = h323.Q931.decode(data[4:])
    assert q931.message_type == h323.SETUP and q931.call_reference == 77
    assert not q931.from_destination
    assert q931.element(h323.IE_BEARER) == h323.BEARER_H221
    assert q931.element(h323.IE_USER_USER)[0] == h323.UU_IA5  # type: ignore[index]
    again = frame(setup)
    assert again.body == setup.body and again.display == "Cisco SX80"


def test_replies_flag_the_call_reference_and_carry_the_cause() -> None:
    setup, _ = secure_setup()
    release = frame(h323.release_complete(setup, "securityDenied", h323.CAUSE_INCOMPATIBLE))
    assert release.name == "releaseComplete" and release.from_destination
    assert release.call_reference == 77 and release.cause == h323.CAUSE_INCOMPATIBLE
    assert release.body["reason"] == "securityDenied"
    assert release.call_identifier == setup.call_identifier


def test_the_tpkt_stream_reassembles_and_refuses_non_tpkt() -> None:
    setup, _ = secure_setup()
    data = setup.encode() * 2
    stream = h323.TpktStream()
    out: list[bytes | h323.H323Error] = []
    for i in range(0, len(data), 50):
        out += stream.feed(data[i : i + 50])
    assert len(out) == 2 and all(isinstance(x, bytes) for x in out)
    bad = h323.TpktStream().feed(b"GET / HTTP/1.1\r\n\r\n")
    assert isinstance(bad[0], h323.H323Error) and bad[0].fatal


@pytest.mark.parametrize(
    "payload",
    [
        b"\x09\x02\x00\x01\x05",  # not Q.931
        b"\x08\x01\x01\x05",  # one-octet call reference
        b"\x08\x02\x00\x01\x05\x7e\x00\x10\x04{}",  # User-user runs past the end
        b"\x08\x02\x00\x01\x05\x28",  # truncated element
        b"\x08\x02\x00\x01\x05",  # no User-user element
        b"\x08\x02\x00\x01\x05\x7e\x00\x03\x05\x01\x02",  # PER: not modelled, refused
        b"\x08\x02\x00\x01\x05\x7e\x00\x03\x04{}",  # not an H323-UserInformation
        b'\x08\x02\x00\x01\x07\x7e\x00\x2d\x04{"h323-uu-pdu":{"h323-message-body":{"setup":{}}}}',
        b"\x08\x02\x00\x01\x6e\x7e\x00\x03\x04{}",  # Notify: not handled
    ],
)
def test_unreadable_messages_are_errors(payload: bytes) -> None:
    with pytest.raises(h323.H323Error):
        h323.H225.decode(payload)


def test_a_setup_with_h235_6_is_admitted_with_what_the_call_needs() -> None:
    setup, _ = secure_setup()
    judged = h323.judge_setup(frame(setup))
    assert isinstance(judged, h323.Admit), judged
    assert (judged.conference_id, judged.password) == (CONFERENCE, "4321")
    assert judged.caller == "Cisco SX80" and judged.media == ("192.0.2.5", 5004)
    assert judged.profile is SrtpProfile.AES_CM_128_HMAC_SHA1_80


def _dh(halfkey: int, **extra: str) -> dict[str, Any]:
    token = h323.dh_token(halfkey)
    token["dhkey"].update(extra)
    return token


@pytest.mark.parametrize(
    ("tokens", "words"),
    [
        ([], "no H.235 ClearTokens"),
        ([h323.dh_token(h323.dh_public(5))], "version 3"),
        ([{"tokenOID": h323.OID_H235_V3}], "no Diffie-Hellman"),
        (
            [{"tokenOID": h323.OID_H235_V3}, {"tokenOID": h323.OID_DH1024, "dhkey": {}}],
            "1024-bit",
        ),
        ([{"tokenOID": h323.OID_H235_V3}, _dh(1)], "out of range"),
        ([{"tokenOID": h323.OID_H235_V3}, _dh(h323.DH2048_PRIME - 1)], "out of range"),
        ([{"tokenOID": h323.OID_H235_V3}, _dh(h323.DH2048_PRIME)], "out of range"),
        # a generator of the whole group, not of the prime-order subgroup: small-subgroup bait
        ([{"tokenOID": h323.OID_H235_V3}, _dh(h323.DH2048_PRIME - 2)], "subgroup"),
        ([{"tokenOID": h323.OID_H235_V3}, _dh(h323.dh_public(5), generator="5")], "generator"),
        ([{"tokenOID": h323.OID_H235_V3}, _dh(h323.dh_public(5), modSize="17")], "modSize"),
    ],
)
def test_a_setup_without_usable_h235_is_security_denied(
    tokens: list[dict[str, Any]], words: str
) -> None:
    setup, _ = secure_setup(tokens=tokens)
    judged = h323.judge_setup(frame(setup))
    assert isinstance(judged, h323.Refuse), judged
    assert judged.reason == "securityDenied" and words in judged.detail


@pytest.mark.parametrize(
    ("channels", "reason", "words"),
    [
        ([], "securityDenied", "no fastStart"),
        ([h323.plain_audio("192.0.2.5", 5004)], "securityDenied", "plain media"),
        (
            [h323.encrypted_audio("192.0.2.5", 5004), h323.plain_audio("192.0.2.5", 5006)],
            "securityDenied",
            "plain media",
        ),
        ([h323.encrypted_audio("192.0.2.5", 5004, "DES-CBC")], "securityDenied", "algorithm"),
        ([{"dataType": {"h235Media": {}}}], "securityDenied", "encryption capability"),
        (
            [h323.encrypted_audio("192.0.2.5", 5004) | {"mediaChannel": {}}],
            "neededFeatureNotSupported",
            "audio",
        ),
    ],
)
def test_media_without_h235_encryption_is_refused(
    channels: list[dict[str, Any]], reason: str, words: str
) -> None:
    setup, _ = secure_setup(channels=channels)
    judged = h323.judge_setup(frame(setup))
    assert isinstance(judged, h323.Refuse), judged
    assert judged.reason == reason and words in judged.detail


def test_version_identifier_and_address_are_checked() -> None:
    setup, _ = secure_setup()
    old = h323.H225("setup", 1, False, setup.body | {"protocolIdentifier": "0.0.8.2250.0.2"})
    assert h323.judge_setup(old) == h323.Refuse(
        "invalidRevision", "H.225.0 version 4 or later needed"
    )
    no_id = h323.H225("setup", 1, False, setup.body | {"callIdentifier": {"guid": "x"}})
    assert isinstance(r := h323.judge_setup(no_id), h323.Refuse) and r.reason == "undefinedReason"
    no_dest = h323.H225("setup", 1, False, setup.body | {"destinationAddress": []})
    assert isinstance(r := h323.judge_setup(no_dest), h323.Refuse)
    assert r.reason == "badFormatAddress"


def test_security_is_judged_before_the_address() -> None:
    setup, _ = secure_setup(tokens=[])
    body = setup.body | {"destinationAddress": []}
    judged = h323.judge_setup(h323.H225("setup", 1, False, body))
    assert isinstance(judged, h323.Refuse) and judged.reason == "securityDenied"


def test_both_sides_derive_the_same_key_encryption_key_and_keys_unwrap() -> None:
    guid = secrets.token_hex(16)
    a, b = h323.dh_private(secrets.token_bytes), h323.dh_private(secrets.token_bytes)
    kek_a = h323.key_encryption_key(a, h323.dh_public(b), guid)
    kek_b = h323.key_encryption_key(b, h323.dh_public(a), guid)
    assert kek_a == kek_b and len(kek_a) == 16
    key = KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes)
    wrapped = h323.wrap_key(kek_a, key)
    assert h323.unwrap_key(kek_b, key.profile, wrapped) == key
    eve = h323.key_encryption_key(h323.dh_private(secrets.token_bytes), h323.dh_public(b), guid)
    with pytest.raises(h323.H323Error):
        h323.unwrap_key(eve, key.profile, wrapped)


def test_the_dh_group_is_the_rfc_3526_safe_prime() -> None:
    assert h323.DH2048_PRIME.bit_length() == 2048
    assert pow(2, h323.DH_SUBGROUP, h323.DH2048_PRIME) == 1  # g generates the order-q subgroup
    assert h323.dh_private(lambda n: b"\x00" * n).bit_length() == h323.PRIVATE_BITS
