"""RTP parse/build: round trips, header extensions, and each kind of broken packet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_core.rtp import (
    HeaderExtension,
    PacketFault,
    RtpError,
    RtpPacket,
    is_rtcp,
    srtp_header_length,
)


def test_fixed_header_matches_rfc_layout() -> None:
    # The libsrtp validation plaintext: V=2, PT=15, seq 0x1234, ts 0xdecafbad, SSRC 0xcafebabe.
    data = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.sequence_number) == (15, 0x1234)
    assert (packet.timestamp, packet.ssrc) == (0xDECAFBAD, 0xCAFEBABE)
    assert packet.payload == b"\xab" * 16 and not packet.marker
    assert packet.build() == data


def test_one_byte_extension_round_trip() -> None:
    ext = HeaderExtension.one_byte({1: b"\x9e", 3: b"abcd"})
    assert ext.profile == 0xBEDE and len(ext.data) % 4 == 0
    packet = RtpPacket(96, 7, 1000, 42, b"payload", marker=True, extension=ext)
    parsed = RtpPacket.parse(packet.build())
    assert parsed == packet
    assert parsed.extension is not None and parsed.extension.elements() == {1: b"\x9e", 3: b"abcd"}


def test_two_byte_extension_with_empty_and_long_values() -> None:
    ext = HeaderExtension.two_byte({5: b"", 200: b"x" * 40})
    packet = RtpPacket(0, 1, 2, 3, b"p", extension=ext)
    parsed = RtpPacket.parse(packet.build())
    assert parsed.extension is not None
    assert parsed.extension.elements() == {5: b"", 200: b"x" * 40}


def test_rfc6904_extension_block_parses() -> None:
    # Header of the RFC 6904 appendix A packet (one-byte elements of 8, 3, 1 and 7 bytes, then a padding byte).
    data = (
        bytes.fromhex(
            "900f1234decafbadcafebabebede000617414273a475262748220000c8308e4655996386b395fb00"
        )
        + b"\xab" * 16
    )
    packet = RtpPacket.parse(data)
    assert packet.extension is not None
    elements = packet.extension.elements()
    assert elements == {
        1: bytes.fromhex("414273a475262748"),
        2: bytes.fromhex("0000c8"),
        3: bytes.fromhex("8e"),
        4: bytes.fromhex("55996386b395fb"),
    }
    assert packet.payload == b"\xab" * 16


def test_csrcs_and_padding_round_trip() -> None:
    packet = RtpPacket(8, 65535, 0xFFFFFFFF, 1, b"abc", csrcs=(10, 11), padding=5)
    data = packet.build()
    assert len(data) == 12 + 8 + 3 + 5 and data[0] & 0x20
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x80\x00\x00", PacketFault.TRUNCATED),
        (bytes.fromhex("400f1234decafbadcafebabe") + b"x", PacketFault.BAD_VERSION),
        (bytes.fromhex("820f1234decafbadcafebabe") + b"\x00\x00\x00", PacketFault.TRUNCATED),
        (bytes.fromhex("900f1234decafbadcafebabebede0004") + b"\x00" * 8, PacketFault.TRUNCATED),
        (bytes.fromhex("a00f1234decafbadcafebabe") + b"ab\x09", PacketFault.MALFORMED),
        (bytes.fromhex("a00f1234decafbadcafebabe") + b"ab\x00", PacketFault.MALFORMED),
    ],
    ids=["short", "version1", "csrc-cut", "extension-cut", "padding-over", "padding-zero"],
)
def test_broken_packets_are_refused_with_their_kind(data: bytes, kind: PacketFault) -> None:
    with pytest.raises(RtpError) as caught:
        RtpPacket.parse(data)
    assert caught.value.kind is kind


def test_corrupt_extension_element_is_malformed() -> None:
    ext = HeaderExtension(0xBEDE, bytes((0x1F, 1, 2, 3)))  # id 1 claims 16 bytes in a 4-byte block
    with pytest.raises(RtpError) as caught:
        ext.elements()
    assert caught.value.kind is PacketFault.MALFORMED


def test_builder_refuses_bad_fields() -> None:
    with pytest.raises(ValueError):
        RtpPacket(128, 0, 0, 0).build()
    with pytest.raises(ValueError):
        HeaderExtension.one_byte({15: b"x"})
    with pytest.raises(ValueError):
        HeaderExtension.one_byte({1: b"x" * 17})


def test_rtcp_demultiplexing() -> None:
    assert is_rtcp(bytes.fromhex("81c8000b"))
    assert not is_rtcp(bytes.fromhex("800f1234"))
    assert not is_rtcp(bytes.fromhex("80e0"))  # PT 96 with the marker bit set is RTP


@settings(deadline=None)
@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    elements=st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=4),
    padding=st.integers(0, 8),
)
def test_any_packet_round_trips(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrcs: list[int],
    elements: dict[int, bytes],
    padding: int,
) -> None:
    ext = HeaderExtension.one_byte(elements) if elements else None
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrcs), ext, padding)
    data = packet.build()
    assert srtp_header_length(data) == len(data) - len(payload) - padding
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    if ext is not None:
        assert parsed.extension is not None and parsed.extension.elements() == elements


@settings(deadline=None)
@given(st.binary(max_size=80))
def test_parse_never_fails_with_anything_but_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert packet.build() == data
