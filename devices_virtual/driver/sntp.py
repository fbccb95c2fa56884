"""SNTP (RFC 4330) packets: the 48-byte request a device sends and the reply a server makes."""

from __future__ import annotations

import struct

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!B B b b I I 4s Q Q Q Q")
MODE_CLIENT, MODE_SERVER, VERSION = 3, 4, 4


def to_ntp(unix_time: float) -> int:
    seconds = int(unix_time) + NTP_EPOCH_OFFSET
    fraction = int((unix_time % 1) * (1 << 32))
    return (seconds << 32) | fraction


def from_ntp(stamp: int) -> float:
    return (stamp >> 32) - NTP_EPOCH_OFFSET + (stamp & 0xFFFFFFFF) / (1 << 32)


def request(transmit_time: float) -> bytes:
    return PACKET.pack(
        (VERSION << 3) | MODE_CLIENT, 0, 0, 0, 0, 0, b"\0" * 4, 0, 0, 0, to_ntp(transmit_time)
    )


def reply(query: bytes, server_time: float) -> bytes | None:
    """The server's answer to a client query, or None for anything that is not one."""
    if len(query) != PACKET.size:
        return None
    first, *_rest, transmit = PACKET.unpack(query)
    if first & 0x7 != MODE_CLIENT:
        return None
    now = to_ntp(server_time)
    return PACKET.pack(
        (VERSION << 3) | MODE_SERVER, 2, 4, -20, 0, 0, b"LOCL", now, transmit, now, now
    )


def server_time(packet: bytes) -> float:
    """The transmit time of a server reply; ValueError for anything else."""
    if len(packet) != PACKET.size:
        raise ValueError(f"an SNTP packet has {PACKET.size} bytes, got {len(packet)}")
    first, stratum, *_rest, transmit = PACKET.unpack(packet)
    if first & 0x7 != MODE_SERVER or stratum == 0:
        raise ValueError("not an SNTP server reply")
    return from_ntp(transmit)
