"""G.711 u-law: the codec against its defining points, mixing, and tone detection."""

from __future__ import annotations

import pytest

from media_core import g711


def test_codec_defining_points_and_round_trip() -> None:
    assert g711.encode([0]) == bytes([0xFF])  # u-law silence
    assert g711.decode(bytes([0xFF, 0x7F])) == [0, 0]
    assert g711.decode(bytes([0x00, 0x80])) == [-32124, 32124]  # the extremes
    assert g711.encode([40000, -40000]) == bytes([0x80, 0x00])  # clipped
    for sample in range(-32000, 32000, 97):
        back = g711.decode(g711.encode([sample]))[0]
        assert abs(back - sample) <= max(4, abs(sample) // 16)  # within one quantisation step


def test_tone_level_finds_the_tone_and_nothing_else() -> None:
    samples = g711.decode(g711.tone(440, 0, 800))
    assert g711.tone_level(samples, 440) == pytest.approx(6000, rel=0.05)
    assert g711.tone_level(samples, 1000) < 100
    assert g711.tone_level([], 440) == 0.0


def test_mix_holds_every_speaker_and_clips() -> None:
    frames = range(0, 8 * g711.FRAME_SAMPLES, g711.FRAME_SAMPLES)  # 160 ms: 6 Hz resolution
    mixed = [
        s for n in frames for s in g711.decode(g711.mix([g711.tone(440, n), g711.tone(660, n)]))
    ]
    assert g711.tone_level(mixed, 440) > 5000 and g711.tone_level(mixed, 660) > 5000
    alone = [s for n in frames for s in g711.decode(g711.mix([g711.tone(440, n)]))]
    assert g711.tone_level(alone, 660) < 100  # the negative: one speaker, one tone
    loud = g711.encode([30000] * 160)
    assert max(g711.decode(g711.mix([loud, loud, loud]))) <= 32124
    assert g711.mix([]) == bytes([0xFF]) * g711.FRAME_SAMPLES
