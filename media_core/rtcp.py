"""RTCP sender and receiver reports (RFC 3550 section 6.4): parse and build compound packets.

Other RTCP packet types inside a compound packet are kept as `RtcpOther` so nothing is lost when a
compound packet is parsed and rebuilt. NTP helpers turn seconds into the 64-bit NTP timestamp and
its middle 32 bits (the LSR field of a report block).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media_core.rtp import PacketFault, RtpError

SR = 200
RR = 201
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")


def ntp_timestamp(unix_seconds: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    return round((unix_seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16 fixed point), as used by LSR and DLSR."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # lost fraction since the last report, in 1/256
    cumulative_lost: int  # signed 24 bits
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int = 0  # delay since that SR, in 1/65536 s

    def build(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes, at: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, at)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def build(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc,
            self.ntp,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        return _packet(SR, len(self.reports), body + b"".join(r.build() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def build(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.build() for r in self.reports)
        return _packet(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """An RTCP packet of another type, kept whole (header included)."""

    packet_type: int
    data: bytes

    def build(self) -> bytes:
        return self.data


RtcpPacket = SenderReport | ReceiverReport | RtcpOther


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError("at most 31 report blocks per packet")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def build_compound(packets: list[RtcpPacket]) -> bytes:
    return b"".join(p.build() for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """All packets of a compound RTCP packet; raises RtpError when any is cut off or corrupt."""
    if len(data) < 4:
        raise RtpError(PacketFault.TRUNCATED, "shorter than an RTCP header")
    found: list[RtcpPacket] = []
    at = 0
    while at < len(data):
        if len(data) - at < 4:
            raise RtpError(PacketFault.TRUNCATED, "RTCP header is cut off")
        first, packet_type, words = _HEADER.unpack_from(data, at)
        if first >> 6 != 2:
            raise RtpError(PacketFault.BAD_VERSION, f"RTCP version {first >> 6}, expected 2")
        end = at + 4 * (words + 1)
        if end > len(data):
            raise RtpError(PacketFault.TRUNCATED, "RTCP packet is longer than the datagram")
        count = first & 0x1F
        if packet_type == SR:
            if end - at < 28 + 24 * count:
                raise RtpError(PacketFault.MALFORMED, "sender report too short for its blocks")
            ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, at + 4)
            blocks = tuple(ReportBlock.parse(data, at + 28 + 24 * i) for i in range(count))
            found.append(SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks))
        elif packet_type == RR:
            if end - at < 8 + 24 * count:
                raise RtpError(PacketFault.MALFORMED, "receiver report too short for its blocks")
            (ssrc,) = struct.unpack_from("!I", data, at + 4)
            blocks = tuple(ReportBlock.parse(data, at + 8 + 24 * i) for i in range(count))
            found.append(ReceiverReport(ssrc, blocks))
        else:
            found.append(RtcpOther(packet_type, data[at:end]))
        at = end
    return found


def rtcp_sender_ssrc(data: bytes) -> int:
    """The SSRC of the first packet of a compound RTCP packet (clear in SRTCP too)."""
    if len(data) < 8:
        raise RtpError(PacketFault.TRUNCATED, "shorter than an RTCP header with SSRC")
    return int.from_bytes(data[4:8], "big")
