"""RTCP sender/receiver reports: layout, round trips, compound packets and broken input."""

from __future__ import annotations

import pytest

from media_core.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpOther,
    SenderReport,
    build_compound,
    ntp_middle32,
    ntp_timestamp,
    parse_compound,
    rtcp_sender_ssrc,
)
from media_core.rtp import PacketFault, RtpError


def test_libsrtp_reference_rtcp_is_a_sender_report() -> None:
    # The plaintext of libsrtp's srtp_validate RTCP vector: SR header, SSRC, then 0xab filler.
    data = bytes.fromhex("81c8000bcafebabe" + "ab" * 16)
    with pytest.raises(RtpError):  # length says 12 words, only 6 are there
        parse_compound(data)
    assert rtcp_sender_ssrc(data) == 0xCAFEBABE


def test_sender_report_round_trip_and_length_field() -> None:
    block = ReportBlock(7, 64, -3, 70_000, 120, 0x12345678, 0x00010000)
    sr = SenderReport(0xCAFEBABE, ntp_timestamp(1_700_000_000.5), 16000, 50, 8000, (block,))
    data = sr.build()
    assert len(data) == 28 + 24
    assert data[0] == 0x81 and data[1] == 200
    assert int.from_bytes(data[2:4], "big") == len(data) // 4 - 1
    assert parse_compound(data) == [sr]


def test_compound_report_keeps_other_packets() -> None:
    rr = ReceiverReport(1, (ReportBlock(2, 0, 0, 5, 0), ReportBlock(3, 255, 100, 9, 7)))
    sdes = RtcpOther(202, bytes.fromhex("81ca0002") + b"\x00\x00\x00\x01\x01\x01a\x00")
    data = build_compound([rr, sdes])
    assert parse_compound(data) == [rr, sdes]


def test_negative_cumulative_loss_survives_24_bit_encoding() -> None:
    block = ReportBlock(1, 0, -1, 0, 0)
    assert ReportBlock.parse(block.build(), 0).cumulative_lost == -1


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x81\xc8", PacketFault.TRUNCATED),
        (bytes.fromhex("41c90001") + b"\x00" * 4, PacketFault.BAD_VERSION),
        (bytes.fromhex("81c90001") + b"\x00" * 4, PacketFault.MALFORMED),  # one block, no room
        (bytes.fromhex("80c90001") + b"\x00" * 4 + b"\x80", PacketFault.TRUNCATED),
    ],
    ids=["short", "version1", "blocks-missing", "trailing-cut"],
)
def test_broken_rtcp_is_refused(data: bytes, kind: PacketFault) -> None:
    with pytest.raises(RtpError) as caught:
        parse_compound(data)
    assert caught.value.kind is kind


def test_ntp_helpers() -> None:
    ntp = ntp_timestamp(0.0)
    assert ntp >> 32 == 2_208_988_800 and ntp & 0xFFFFFFFF == 0
    assert ntp_middle32(ntp_timestamp(10.5)) - ntp_middle32(ntp_timestamp(10.0)) == 0x8000
