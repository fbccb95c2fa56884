"""RTP packets (RFC 3550): parse and build, with header extensions (RFC 8285 one- and two-byte).

`RtpPacket.parse` refuses anything that is not a complete version-2 packet with `RtpError`, whose
`kind` says why (truncated, bad version, malformed), so a receiver can count each kind apart.
`srtp_header_length` checks the clear header of an SRTP packet the same way without copying it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
FIXED_HEADER = 12
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


class PacketFault(enum.Enum):
    TRUNCATED = "truncated"
    BAD_VERSION = "bad_version"
    MALFORMED = "malformed"


class RtpError(ValueError):
    """A packet that cannot be RTP; `kind` is the reason class a receiver counts."""

    def __init__(self, kind: PacketFault, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """The header extension block: a 16-bit profile and its data (a multiple of 4 bytes)."""

    profile: int
    data: bytes

    @classmethod
    def one_byte(cls, elements: dict[int, bytes]) -> HeaderExtension:
        """RFC 8285 one-byte elements: ids 1..14, values 1..16 bytes."""
        out = bytearray()
        for ident, value in sorted(elements.items()):
            if not 1 <= ident <= 14:
                raise ValueError(f"one-byte extension id {ident} is outside 1..14")
            if not 1 <= len(value) <= 16:
                raise ValueError(f"one-byte extension {ident} value must be 1..16 bytes")
            out.append((ident << 4) | (len(value) - 1))
            out += value
        return cls(ONE_BYTE_PROFILE, bytes(_pad4(out)))

    @classmethod
    def two_byte(cls, elements: dict[int, bytes], appbits: int = 0) -> HeaderExtension:
        """RFC 8285 two-byte elements: ids 1..255, values 0..255 bytes."""
        out = bytearray()
        for ident, value in sorted(elements.items()):
            if not 1 <= ident <= 255:
                raise ValueError(f"two-byte extension id {ident} is outside 1..255")
            if len(value) > 255:
                raise ValueError(f"two-byte extension {ident} value is over 255 bytes")
            out += bytes((ident, len(value))) + value
        return cls(TWO_BYTE_PROFILE | (appbits & 0xF), bytes(_pad4(out)))

    def elements(self) -> dict[int, bytes]:
        """The RFC 8285 elements; an empty dict for another profile. Raises RtpError if corrupt."""
        if self.profile == ONE_BYTE_PROFILE:
            return _one_byte_elements(self.data)
        if self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
            return _two_byte_elements(self.data)
        return {}


def _pad4(data: bytearray) -> bytearray:
    data += b"\x00" * (-len(data) % 4)
    return data


def _one_byte_elements(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        ident, size = data[i] >> 4, (data[i] & 0x0F) + 1
        if ident == 0:  # padding byte
            i += 1
            continue
        if ident == 15:  # reserved: stop processing (RFC 8285 section 4.2)
            break
        if i + 1 + size > len(data):
            raise RtpError(PacketFault.MALFORMED, "one-byte extension element overruns its block")
        found[ident] = data[i + 1 : i + 1 + size]
        i += 1 + size
    return found


def _two_byte_elements(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        ident = data[i]
        if ident == 0:
            i += 1
            continue
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            raise RtpError(PacketFault.MALFORMED, "two-byte extension element overruns its block")
        size = data[i + 1]
        found[ident] = data[i + 2 : i + 2 + size]
        i += 2 + size
    return found


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: HeaderExtension | None = None
    padding: int = field(default=0)

    def build(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise ValueError("payload type must be 0..127")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise ValueError("padding must be 0..255 bytes")
        first = (RTP_VERSION << 6) | (len(self.csrcs) & 0x0F)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        out = bytearray(
            _FIXED.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        )
        for csrc in self.csrcs:
            out += struct.pack("!I", csrc)
        if self.extension is not None:
            data = self.extension.data
            if len(data) % 4:
                raise ValueError("header extension data must be a multiple of 4 bytes")
            out += _EXT_HEADER.pack(self.extension.profile, len(data) // 4) + data
        out += self.payload
        if self.padding:
            out += b"\x00" * (self.padding - 1) + bytes((self.padding,))
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        header = srtp_header_length(data)
        first, second, seq, ts, ssrc = _FIXED.unpack_from(data)
        cc = first & 0x0F
        csrcs = struct.unpack_from(f"!{cc}I", data, FIXED_HEADER) if cc else ()
        extension = None
        if first & 0x10:
            at = FIXED_HEADER + 4 * cc
            profile, words = _EXT_HEADER.unpack_from(data, at)
            extension = HeaderExtension(profile, data[at + 4 : at + 4 + 4 * words])
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or header + padding > len(data):
                raise RtpError(PacketFault.MALFORMED, "padding length is inconsistent")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[header:end],
            marker=bool(second & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )


def srtp_header_length(data: bytes) -> int:
    """Length of the (clear) RTP header of an RTP or SRTP packet, after checking it is complete."""
    if len(data) < FIXED_HEADER:
        raise RtpError(PacketFault.TRUNCATED, f"{len(data)} bytes is shorter than an RTP header")
    first = data[0]
    if first >> 6 != RTP_VERSION:
        raise RtpError(PacketFault.BAD_VERSION, f"RTP version {first >> 6}, expected 2")
    length = FIXED_HEADER + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < length + 4:
            raise RtpError(PacketFault.TRUNCATED, "header extension is cut off")
        words = (data[length + 2] << 8) | data[length + 3]
        length += 4 + 4 * words
    if len(data) < length:
        raise RtpError(PacketFault.TRUNCATED, "RTP header is cut off")
    return length


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: RTCP packet types 192..223 sit where RTP's marker+PT byte is."""
    return len(data) >= 2 and 192 <= data[1] <= 223
