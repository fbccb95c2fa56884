"""The recording mixdown: streams placed by their own timestamps, added, silence where nobody spoke."""

from __future__ import annotations

from array import array

from media_core import g711
from media_core.mixdown import SAMPLE_RATE, Mixdown
from media_core.rtp import RtpPacket
from media_core.sources import AudioSource


def samples(pcm: bytes) -> list[int]:
    return list(array("h", pcm))


def frames(source: AudioSource, count: int) -> list[RtpPacket]:
    return [p for _ in range(count) for p in source.next_frame()]


def test_two_talkers_are_added_and_both_tones_are_in_the_mix() -> None:
    mix = Mixdown(start=0.0, delay=0.0)
    first = AudioSource(ssrc=1, tone_hz=440, first_timestamp=2**32 - 800)  # wraps at frame 5
    second = AudioSource(ssrc=2, tone_hz=660, first_timestamp=17)
    for index, (a, b) in enumerate(zip(frames(first, 50), frames(second, 50), strict=True)):
        mix.push(a, index * 0.02)
        mix.push(b, index * 0.02 + 0.005)  # jitter in arrival does not move the stream
    out = samples(mix.drain(1.0, final=True))
    assert len(out) == SAMPLE_RATE + 40  # the second stream was anchored 5 ms later
    assert g711.tone_level(out, 440) > 4000 and g711.tone_level(out, 660) > 4000
    assert g711.tone_level(out, 1000) < 300
    assert mix.counters.mixed == 100 and mix.counters.late == 0


def test_a_stream_keeps_its_timestamps_and_silence_fills_what_nobody_said() -> None:
    mix = Mixdown(start=0.0, delay=0.0)
    source = AudioSource(ssrc=9, tone_hz=440)
    packets = frames(source, 10)
    mix.push(packets[0], 0.5)  # anchored half a second in
    mix.push(packets[9], 0.51)  # 180 ms later by its timestamp, whatever the arrival
    out = samples(mix.drain(1.0, final=True))
    assert out[:4000] == [0] * 4000
    assert any(out[4000:4160])
    assert out[4160 : 4000 + 9 * 160] == [0] * (8 * 160)
    assert any(out[4000 + 9 * 160 : 4000 + 10 * 160])


def test_drain_hands_out_only_up_to_the_delay_and_late_packets_are_counted() -> None:
    mix = Mixdown(start=0.0, delay=0.3)
    assert mix.drain(0.2) == b""
    assert len(mix.drain(1.3)) == 2 * SAMPLE_RATE  # one second, two bytes a sample
    late = AudioSource(ssrc=3, tone_hz=440)
    packet = late.next_frame()[0]
    mix.push(packet, 1.3)  # anchored at 1.3 s, after what was written (1.0 s): kept
    mix.push(late.next_frame()[0], 1.32)
    assert mix.counters.late == 0
    rewind = RtpPacket(0, 1, (packet.timestamp - 8000 * 2) & 0xFFFFFFFF, 3, packet.payload)
    mix.push(rewind, 1.4)  # two seconds before its stream's start: already written
    assert mix.counters.late == 1


def test_video_and_other_payloads_are_not_mixed() -> None:
    mix = Mixdown(start=0.0, delay=0.0)
    mix.push(RtpPacket(96, 1, 0, 5, b"\x00" * 100), 0.1)
    assert mix.counters.ignored_payload == 1
    assert set(samples(mix.drain(0.2, final=True))) == {0}


def test_clipping_happens_on_the_way_out() -> None:
    mix = Mixdown(start=0.0, delay=0.0)
    loud = bytes([0x80]) * 160  # u-law code of the largest positive sample
    for ssrc in (1, 2):
        mix.push(RtpPacket(0, 1, 0, ssrc, loud), 0.0)
    assert set(samples(mix.drain(0.02, final=True))) == {32767}


def test_a_slow_sender_is_anchored_afresh_instead_of_falling_into_the_written_past() -> None:
    mix = Mixdown(start=0.0, delay=0.1)
    source = AudioSource(ssrc=4, tone_hz=440)
    mix.push(source.next_frame()[0], 0.0)
    mix.drain(1.0)  # 0.9 s written while the sender paused
    mix.push(source.next_frame()[0], 1.0)  # its timestamp says 20 ms: it plays now instead
    assert mix.counters.reanchored == 1 and mix.counters.late == 0
    out = samples(mix.drain(1.2, final=True))
    assert any(out[800:960])  # at 1.0 s, 0.9 s into what is handed out now
