"""The jitter buffer: ordering, loss, late and duplicate packets, wraparound, playout times."""

from __future__ import annotations

from media_core.jitter import JitterBuffer
from media_core.rtp import RtpPacket


def audio(seq: int, ts: int | None = None) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, (ts if ts is not None else seq * 160) & 0xFFFFFFFF, 1)


def test_reordered_packets_play_in_order_at_their_time() -> None:
    jb = JitterBuffer(clock_rate=8000, delay=0.06)
    jb.push(audio(0), 0.000)
    jb.push(audio(2), 0.041)
    jb.push(audio(1), 0.045)
    assert jb.pop(0.059) == []
    assert [p.packet.sequence_number for p in jb.pop(0.060)] == [0]
    assert jb.next_due() == 0.080
    assert [p.packet.sequence_number for p in jb.pop(0.100)] == [1, 2]
    assert jb.stats.lost == 0 and jb.stats.played == 3


def test_missing_packet_is_reported_lost_before_the_next() -> None:
    jb = JitterBuffer(clock_rate=8000, delay=0.02)
    for seq in (0, 1, 3, 4):
        jb.push(audio(seq), seq * 0.02)
    played = jb.pop(1.0)
    assert [(p.packet.sequence_number, p.lost_before) for p in played] == [
        (0, 0),
        (1, 0),
        (3, 1),
        (4, 0),
    ]
    assert jb.stats.lost == 1


def test_late_and_duplicate_packets_are_dropped() -> None:
    jb = JitterBuffer(clock_rate=8000, delay=0.02)
    assert jb.push(audio(0), 0.0)
    assert jb.push(audio(1), 0.01)
    assert not jb.push(audio(1), 0.015)  # duplicate
    assert not jb.push(audio(2), 0.5)  # after its playout time (0.06)
    jb.pop(0.05)
    assert not jb.push(audio(0), 0.05)  # already played
    assert (jb.stats.duplicates, jb.stats.late) == (1, 2)


def test_sequence_and_timestamp_wrap() -> None:
    jb = JitterBuffer(clock_rate=8000, delay=0.02)
    first_ts = 0xFFFFFFFF - 159
    for i in range(4):
        jb.push(audio(0xFFFE + i, first_ts + 160 * i), i * 0.02)
    played = jb.pop(1.0)
    assert [p.packet.sequence_number for p in played] == [0xFFFE, 0xFFFF, 0, 1]
    assert all(p.lost_before == 0 for p in played)


def test_capacity_overflow_is_counted() -> None:
    jb = JitterBuffer(clock_rate=8000, delay=10.0, capacity=3)
    results = [jb.push(audio(i), 0.0) for i in range(5)]
    assert results == [True, True, True, False, False] and jb.stats.overflow == 2
