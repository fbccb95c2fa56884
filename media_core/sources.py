"""Synthetic media sources: 20 ms audio frames and video frames at a given bitrate.

Every payload starts with, and is filled with, the known `MARKER`, followed by the source's SSRC and
the frame counters, so a packet capture can prove the media never appears in the clear and a receiver
can check what it got. Video frames are split into packets below `MAX_VIDEO_PACKET` bytes, well
under what libsrtp's buffer takes. Sources are plain objects: the caller supplies the first sequence
number and timestamp (random in a real call) and asks for frames on its own clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from media_core import g711
from media_core.rtp import HeaderExtension, RtpPacket

MARKER = b"ROOMTRUST-MEDIA:"
AUDIO_CLOCK = 8000
VIDEO_CLOCK = 90000
AUDIO_FRAME_SECONDS = 0.020
PCMU = 0
VIDEO_PT = 96
MAX_VIDEO_PACKET = 1200
AUDIO_LEVEL_EXTENSION_ID = 1  # RFC 6464 client-to-mixer audio level, one-byte form

_TAG = struct.Struct("!III")  # ssrc, frame index, fragment index


def contains_marker(data: bytes) -> bool:
    return MARKER in data


def _payload(size: int, ssrc: int, frame: int, fragment: int) -> bytes:
    head = MARKER + _TAG.pack(ssrc, frame, fragment)
    if size <= len(head):
        return head[:size]
    repeats = (size - len(head)) // len(MARKER) + 1
    return (head + MARKER * repeats)[:size]


def payload_identity(payload: bytes) -> tuple[int, int, int] | None:
    """(ssrc, frame, fragment) of a synthetic payload, or None if it is not one."""
    if not payload.startswith(MARKER) or len(payload) < len(MARKER) + _TAG.size:
        return None
    ssrc, frame, fragment = _TAG.unpack_from(payload, len(MARKER))
    return ssrc, frame, fragment


@dataclass
class AudioSource:
    """G.711 u-law sized audio: one 160-byte packet per 20 ms frame.

    The payload is the marker pattern, or with `tone_hz` a real u-law sine at that frequency (for
    legs that are decoded and mixed, such as the PSTN gateway's)."""

    ssrc: int
    first_sequence: int = 0
    first_timestamp: int = 0
    payload_type: int = PCMU
    with_audio_level: bool = True
    tone_hz: float | None = None
    frames: int = field(default=0, init=False)

    frame_interval: float = field(default=AUDIO_FRAME_SECONDS, init=False)
    clock_rate: int = field(default=AUDIO_CLOCK, init=False)

    @property
    def samples_per_frame(self) -> int:
        return int(self.clock_rate * self.frame_interval)

    def next_frame(self) -> list[RtpPacket]:
        index = self.frames
        self.frames += 1
        extension = None
        if self.with_audio_level:
            # voice activity flag set, level -30 dBov
            extension = HeaderExtension.one_byte({AUDIO_LEVEL_EXTENSION_ID: bytes((0x80 | 30,))})
        packet = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=(self.first_sequence + index) & 0xFFFF,
            timestamp=(self.first_timestamp + index * self.samples_per_frame) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=(
                _payload(self.samples_per_frame, self.ssrc, index, 0)
                if self.tone_hz is None
                else g711.tone(self.tone_hz, index * self.samples_per_frame, self.samples_per_frame)
            ),
            marker=index == 0,
            extension=extension,
        )
        return [packet]


@dataclass
class VideoSource:
    """Video frames of bitrate/8/fps bytes, each split into packets under `max_packet` bytes."""

    ssrc: int
    bitrate_bps: int
    fps: int = 30
    first_sequence: int = 0
    first_timestamp: int = 0
    payload_type: int = VIDEO_PT
    max_packet: int = MAX_VIDEO_PACKET
    frames: int = field(default=0, init=False)
    _sequence: int = field(default=0, init=False)

    clock_rate: int = field(default=VIDEO_CLOCK, init=False)

    def __post_init__(self) -> None:
        if self.bitrate_bps <= 0 or self.fps <= 0:
            raise ValueError("bitrate and frame rate must be positive")
        if not 64 <= self.max_packet <= 1300:
            raise ValueError("max_packet must be 64..1300 bytes")
        self._sequence = self.first_sequence

    @property
    def frame_interval(self) -> float:
        return 1.0 / self.fps

    @property
    def frame_bytes(self) -> int:
        return max(1, self.bitrate_bps // 8 // self.fps)

    def next_frame(self) -> list[RtpPacket]:
        index = self.frames
        self.frames += 1
        room = self.max_packet - 12  # fixed RTP header, no CSRCs or extension
        total = self.frame_bytes
        sizes = [room] * (total // room) + ([total % room] if total % room else [])
        timestamp = (self.first_timestamp + index * (self.clock_rate // self.fps)) & 0xFFFFFFFF
        packets = []
        for fragment, size in enumerate(sizes):
            packets.append(
                RtpPacket(
                    payload_type=self.payload_type,
                    sequence_number=self._sequence & 0xFFFF,
                    timestamp=timestamp,
                    ssrc=self.ssrc,
                    payload=_payload(size, self.ssrc, index, fragment),
                    marker=fragment == len(sizes) - 1,
                )
            )
            self._sequence += 1
        return packets
