"""A playout (jitter) buffer: packets in, in-order packets out at their playout time.

Each packet's playout time is the first packet's arrival plus a fixed delay plus its RTP timestamp
offset from the first packet. `pop(now)` releases, in sequence order, every packet whose time has
come and reports the sequence numbers skipped before it as lost. A packet that arrives after its
playout time, or after a later packet was played, is late and dropped; a second copy of a packet is a
duplicate and dropped. Sequence numbers and timestamps wrap as RTP's do.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from media_core.rtp import RtpPacket


@dataclass(frozen=True, slots=True)
class Playout:
    packet: RtpPacket
    lost_before: int  # sequence numbers skipped (never played) right before this packet


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    overflow: int = 0


def _unwrap(value: int, reference: int, bits: int) -> int:
    """The extended value nearest to `reference` whose low `bits` equal `value`."""
    span = 1 << bits
    delta = (value - reference) % span
    if delta >= span // 2:
        delta -= span
    return reference + delta


@dataclass
class JitterBuffer:
    clock_rate: int
    delay: float = 0.06
    capacity: int = 512
    stats: JitterStats = field(default_factory=JitterStats)
    _heap: list[tuple[int, RtpPacket]] = field(default_factory=list)
    _held: set[int] = field(default_factory=set)
    _base: tuple[float, int] | None = None  # (arrival, extended timestamp) of the first packet
    _highest_seq: int | None = None
    _last_ts: int = 0
    _next_seq: int | None = None  # the extended sequence number expected next at playout

    def push(self, packet: RtpPacket, now: float) -> bool:
        """Accept a packet that arrived at `now`; False when it is dropped (late, duplicate, full)."""
        self.stats.received += 1
        if self._highest_seq is None:
            seq = packet.sequence_number
            self._base = (now, packet.timestamp)
            self._last_ts = packet.timestamp
            self._next_seq = seq
            self._highest_seq = seq
        else:
            seq = _unwrap(packet.sequence_number, self._highest_seq, 16)
        if self._next_seq is not None and seq < self._next_seq:
            self.stats.late += 1
            return False
        if seq in self._held:
            self.stats.duplicates += 1
            return False
        if now > self.playout_time(packet):
            self.stats.late += 1
            return False
        if len(self._heap) >= self.capacity:
            self.stats.overflow += 1
            return False
        self._highest_seq = max(self._highest_seq, seq)
        self._held.add(seq)
        heapq.heappush(self._heap, (seq, packet))
        return True

    def playout_time(self, packet: RtpPacket) -> float:
        if self._base is None:
            raise RuntimeError("no packet has arrived yet")
        arrival, base_ts = self._base
        ts = _unwrap(packet.timestamp, self._last_ts, 32)
        self._last_ts = ts
        return arrival + self.delay + (ts - base_ts) / self.clock_rate

    def pop(self, now: float) -> list[Playout]:
        """Every packet due by `now`, in sequence order."""
        out: list[Playout] = []
        while self._heap and self.playout_time(self._heap[0][1]) <= now:
            seq, packet = heapq.heappop(self._heap)
            self._held.discard(seq)
            expected = self._next_seq if self._next_seq is not None else seq
            lost = max(0, seq - expected)
            self.stats.lost += lost
            self.stats.played += 1
            self._next_seq = seq + 1
            out.append(Playout(packet, lost))
        return out

    def next_due(self) -> float | None:
        """When `pop` next has something to release (for the driver's timer)."""
        return self.playout_time(self._heap[0][1]) if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
