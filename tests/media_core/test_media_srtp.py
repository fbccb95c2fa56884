"""SRTP/SRTCP through media_core: libsrtp's own validation vectors, replay, tags and key handling."""

from __future__ import annotations

import secrets

import pytest

from media_core.srtp import (
    MAX_RTP_TO_PROTECT,
    Direction,
    KeyMaterial,
    KeyMaterialError,
    SrtpError,
    SrtpFailure,
    SrtpProfile,
    SrtpSession,
)

# libsrtp test/srtp_driver.c, srtp_validate(): the default policy (AES_CM_128_HMAC_SHA1_80),
# SSRC 0xcafebabe, test_key, srtp_plaintext_ref -> srtp_ciphertext, rtcp -> srtcp_ciphertext.
TEST_KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
RTP_PLAINTEXT_REF = bytes.fromhex("800f1234decafbadcafebabe" + "ab" * 16)
SRTP_CIPHERTEXT = bytes.fromhex(
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
)
RTCP_PLAINTEXT_REF = bytes.fromhex("81c8000bcafebabe" + "ab" * 16)
SRTCP_CIPHERTEXT = bytes.fromhex(
    "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798"
)

# srtp_validate_gcm(): AEAD_AES_128_GCM with a 16-byte tag.
GCM_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0fa0a1a2a3a4a5a6a7a8a9aaab")
GCM_SRTP_CIPHERTEXT = bytes.fromhex(
    "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392"
)
GCM_SRTCP_CIPHERTEXT = bytes.fromhex(
    "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001"
)

CM = SrtpProfile.AES_CM_128_HMAC_SHA1_80
GCM = SrtpProfile.AEAD_AES_128_GCM


@pytest.mark.parametrize(
    ("profile", "key", "srtp", "srtcp"),
    [
        (CM, TEST_KEY, SRTP_CIPHERTEXT, SRTCP_CIPHERTEXT),
        (GCM, GCM_KEY, GCM_SRTP_CIPHERTEXT, GCM_SRTCP_CIPHERTEXT),
    ],
    ids=["srtp_validate", "srtp_validate_gcm"],
)
def test_libsrtp_validation_vectors(
    profile: SrtpProfile, key: bytes, srtp: bytes, srtcp: bytes
) -> None:
    keys = KeyMaterial.from_bytes(profile, key)
    sender = SrtpSession(keys, Direction.OUTBOUND, ssrc=0xCAFEBABE)
    assert sender.protect(RTP_PLAINTEXT_REF) == srtp
    assert sender.protect_rtcp(RTCP_PLAINTEXT_REF) == srtcp
    receiver = SrtpSession(keys, Direction.INBOUND, ssrc=0xCAFEBABE)
    assert receiver.unprotect(srtp) == RTP_PLAINTEXT_REF
    assert receiver.unprotect_rtcp(srtcp) == RTCP_PLAINTEXT_REF
    assert len(srtp) - len(RTP_PLAINTEXT_REF) == profile.tag_length
    assert len(srtcp) - len(RTCP_PLAINTEXT_REF) == profile.srtcp_trailer_length


def test_any_ssrc_sessions_reproduce_the_vector_too() -> None:
    keys = KeyMaterial.from_bytes(CM, TEST_KEY)
    assert SrtpSession(keys, Direction.OUTBOUND).protect(RTP_PLAINTEXT_REF) == SRTP_CIPHERTEXT
    assert SrtpSession(keys, Direction.INBOUND).unprotect(SRTP_CIPHERTEXT) == RTP_PLAINTEXT_REF


@pytest.mark.parametrize("profile", list(SrtpProfile))
def test_replayed_packet_is_refused_as_replay(profile: SrtpProfile) -> None:
    keys = KeyMaterial.generate(profile, secrets.token_bytes)
    packet = SrtpSession(keys, Direction.OUTBOUND).protect(RTP_PLAINTEXT_REF)
    receiver = SrtpSession(keys, Direction.INBOUND)
    receiver.unprotect(packet)
    with pytest.raises(SrtpError) as caught:
        receiver.unprotect(packet)
    assert caught.value.kind is SrtpFailure.REPLAY


def test_replayed_srtcp_is_refused_as_replay() -> None:
    keys = KeyMaterial.from_bytes(CM, TEST_KEY)
    receiver = SrtpSession(keys, Direction.INBOUND)
    receiver.unprotect_rtcp(SRTCP_CIPHERTEXT)
    with pytest.raises(SrtpError) as caught:
        receiver.unprotect_rtcp(SRTCP_CIPHERTEXT)
    assert caught.value.kind is SrtpFailure.REPLAY


@pytest.mark.parametrize("profile", list(SrtpProfile))
def test_flipped_tag_or_payload_bit_is_a_bad_tag(profile: SrtpProfile) -> None:
    keys = KeyMaterial.generate(profile, secrets.token_bytes)
    for position in (-1, 14):  # last tag byte, a payload byte
        packet = bytearray(SrtpSession(keys, Direction.OUTBOUND).protect(RTP_PLAINTEXT_REF))
        packet[position] ^= 0x01
        with pytest.raises(SrtpError) as caught:
            SrtpSession(keys, Direction.INBOUND).unprotect(bytes(packet))
        assert caught.value.kind is SrtpFailure.BAD_TAG


def test_other_key_and_plain_rtp_do_not_authenticate() -> None:
    keys = KeyMaterial.generate(CM, secrets.token_bytes)
    other = KeyMaterial.generate(CM, secrets.token_bytes)
    packet = SrtpSession(other, Direction.OUTBOUND).protect(RTP_PLAINTEXT_REF)
    receiver = SrtpSession(keys, Direction.INBOUND)
    for data in (packet, RTP_PLAINTEXT_REF + b"\x00" * 10):
        with pytest.raises(SrtpError) as caught:
            receiver.unprotect(data)
        assert caught.value.kind is SrtpFailure.BAD_TAG


def test_packets_over_the_libsrtp_buffer_are_refused_before_libsrtp() -> None:
    session = SrtpSession(KeyMaterial.generate(CM, secrets.token_bytes), Direction.OUTBOUND)
    header = bytes.fromhex("800f1234decafbadcafebabe")
    assert (
        len(session.protect(header + b"x" * (MAX_RTP_TO_PROTECT - 12))) == MAX_RTP_TO_PROTECT + 10
    )
    with pytest.raises(SrtpError) as caught:
        session.protect(header[:3] + b"\x35" + header[4:] + b"x" * (MAX_RTP_TO_PROTECT - 11))
    assert caught.value.kind is SrtpFailure.TOO_LONG


def test_key_material_checks_lengths_and_encodes_as_sdes_inline() -> None:
    keys = KeyMaterial.from_bytes(CM, TEST_KEY)
    assert keys.encode() == "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm"
    assert KeyMaterial.decode(CM, keys.encode()) == keys
    assert TEST_KEY.hex() not in repr(keys) and "4fl6" not in repr(keys)
    with pytest.raises(KeyMaterialError):
        KeyMaterial.from_bytes(GCM, TEST_KEY)  # 30 bytes; GCM takes 16 + 12
    with pytest.raises(KeyMaterialError):
        KeyMaterial.decode(CM, "not base64!")
    assert len(KeyMaterial.generate(GCM, secrets.token_bytes).key_and_salt) == 28


def test_replay_window_bounds() -> None:
    keys = KeyMaterial.from_bytes(CM, TEST_KEY)
    with pytest.raises(ValueError):
        SrtpSession(keys, Direction.INBOUND, replay_window=10)
