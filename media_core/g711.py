"""G.711 u-law (PCMU) audio, sans-IO: encode, decode, mix, tones, and tone detection.

What the PSTN leg needs: a phone speaks 8 kHz PCMU in 20 ms frames (160 bytes); a gateway decodes
the conference's streams to 16-bit linear samples, adds them, clips, and encodes one frame for the
phone. `ToneSource`-style test audio is a sine per speaker, and `tone_level` (Goertzel) tells which
speakers are in a frame, so a test can show who a listener hears without any audio library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cache

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
BIAS = 0x84
CLIP = 32635
SILENCE = 0xFF  # u-law code of 0


def _decode_one(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    sample = (((mantissa << 3) + BIAS) << exponent) - BIAS
    return -sample if sign else sample


def _encode_one(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sign else sample, CLIP) + BIAS
    exponent = max(0, (magnitude >> 7).bit_length() - 1)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


@cache
def _decode_table() -> tuple[int, ...]:
    return tuple(_decode_one(code) for code in range(256))


@cache
def _encode_table() -> bytes:
    """u-law code of every 16-bit sample, indexed by sample + 32768."""
    return bytes(_encode_one(sample) for sample in range(-32768, 32768))


def decode(frame: bytes) -> list[int]:
    """u-law bytes to 16-bit linear samples."""
    table = _decode_table()
    return [table[code] for code in frame]


def encode(samples: Iterable[int]) -> bytes:
    """16-bit linear samples (clipped to the 16-bit range) to u-law bytes."""
    table = _encode_table()
    return bytes(table[min(32767, max(-32768, s)) + 32768] for s in samples)


def mix(frames: Sequence[bytes], length: int = FRAME_SAMPLES) -> bytes:
    """One u-law frame holding the sum of `frames` (each u-law, shorter ones padded with silence)."""
    total = [0] * length
    table = _decode_table()
    for frame in frames:
        for i, code in enumerate(frame[:length]):
            total[i] += table[code]
    return encode(total)


def tone(
    frequency: float, first_sample: int, count: int = FRAME_SAMPLES, level: int = 6000
) -> bytes:
    """`count` u-law samples of a sine at `frequency` Hz, starting at sample index `first_sample`."""
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return encode(round(level * math.sin(step * (first_sample + n))) for n in range(count))


def tone_level(samples: Sequence[int], frequency: float) -> float:
    """Amplitude of the `frequency` component of linear samples (Goertzel), in sample units.

    A sine of amplitude A gives about A; frequencies far from it give close to 0."""
    n = len(samples)
    if n == 0:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * frequency / SAMPLE_RATE)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / n
