"""A recording's mixdown, sans-IO: RTP audio packets in, 16-bit linear PCM (mono, 8 kHz) out.

The recorder hears each talker as a separate RTP stream (SSRC). Every stream is placed on the
recording's own timeline: its first packet is anchored at the moment it arrived, later packets at
that anchor plus their RTP timestamp distance (32-bit wrap unwrapped), so a stream's own timing is
kept whatever the network jitter. Streams are decoded (G.711 u-law) and added; `drain` hands out
the mix up to `now - delay` (late packets within `delay` still land in place) and silence where
nobody spoke, so the file's length is the recording's wall-clock length. A stream whose newest
packet would land in what was already handed out (its sender's clock runs slow, or it paused) is
anchored afresh at that packet. Samples are clipped to 16 bits only when handed out. What cannot
be mixed (another payload type, such as video, or a reordered packet older than what was already
handed out) is counted, not kept.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, fields

from media_core import g711
from media_core.rtp import RtpPacket
from media_core.sources import PCMU

SAMPLE_RATE = g711.SAMPLE_RATE
DEFAULT_DELAY = 0.3
MAX_JUMP_SECONDS = 60  # a stream jumping further than this is anchored afresh
_WRAP = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class MixdownCounters:
    packets: int = 0
    mixed: int = 0
    ignored_payload: int = 0
    late: int = 0
    reanchored: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Stream:
    anchor: int  # sample position of the extended timestamp `first`
    first: int
    last: int  # last extended timestamp


class Mixdown:
    def __init__(self, start: float, delay: float = DEFAULT_DELAY) -> None:
        self.start = start
        self.delay = delay
        self.counters = MixdownCounters()
        self.written = 0  # samples handed out so far
        self._pending: list[int] = []  # samples from `written` onwards
        self._streams: dict[int, _Stream] = {}

    def _position(self, now: float) -> int:
        return max(0, round((now - self.start) * SAMPLE_RATE))

    def _place(self, packet: RtpPacket, now: float) -> int:
        """The sample position of the packet's first sample on the recording's timeline."""
        stream = self._streams.get(packet.ssrc)
        if stream is not None:
            step = (packet.timestamp - stream.last) % _WRAP
            extended = stream.last + (step - _WRAP if step >= _HALF else step)
            position = stream.anchor + extended - stream.first
            newest = extended > stream.last
            stream.last = max(stream.last, extended)
            if abs(position - self._position(now)) > MAX_JUMP_SECONDS * SAMPLE_RATE:
                self.counters.reanchored += 1
            elif position < self.written and newest:
                # the sender's clock runs slow against ours (or it paused): its newest packet
                # plays now rather than into what was already written
                self.counters.reanchored += 1
                stream.anchor = self._position(now) - (extended - stream.first)
                return stream.anchor + extended - stream.first
            else:
                return position
        anchor = self._position(now)
        self._streams[packet.ssrc] = _Stream(anchor, packet.timestamp, packet.timestamp)
        return anchor

    def push(self, packet: RtpPacket, now: float) -> None:
        """Mix one packet that arrived at `now` (the caller's monotonic clock)."""
        self.counters.packets += 1
        if packet.payload_type != PCMU:
            self.counters.ignored_payload += 1
            return
        offset = self._place(packet, now) - self.written
        samples = g711.decode(packet.payload)
        if offset < 0:
            samples = samples[-offset:]
            offset = 0
            if not samples:
                self.counters.late += 1
                return
        pending = self._pending
        end = offset + len(samples)
        if end > len(pending):
            pending.extend([0] * (end - len(pending)))
        for i, sample in enumerate(samples, offset):
            pending[i] += sample
        self.counters.mixed += 1

    def drain(self, now: float, final: bool = False) -> bytes:
        """The mix up to `now - delay` (everything buffered, when `final`), as s16le PCM."""
        due = max(self._position(now) - round(self.delay * SAMPLE_RATE), self.written)
        if final:
            due = max(due, self.written + len(self._pending))
        count = due - self.written
        out = self._pending[:count]
        out.extend([0] * (count - len(out)))
        del self._pending[:count]
        self.written = due
        pcm = array("h", (min(32767, max(-32768, s)) for s in out))
        if sys.byteorder == "big":
            pcm.byteswap()
        return pcm.tobytes()
