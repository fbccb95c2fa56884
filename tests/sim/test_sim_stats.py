"""Confidence intervals of replication results: Student-t on means, delta-method on ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sim.stats import ratio_interval, seed_streams, t_interval


def test_the_t_interval_is_the_textbook_one() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    v = t_interval(values, 0.95)
    assert v.mean == 2.5 and v.n == 4
    assert v.half_width == pytest.approx(sps.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2)
    assert v.contains(2.5) and not v.contains(6.0)


def test_the_ratio_interval_is_the_pooled_ratio_with_the_delta_method_error() -> None:
    y, x = [2.0, 3.0, 7.0, 4.0], [10.0, 12.0, 30.0, 18.0]
    v = ratio_interval(y, x, 0.95)
    r = sum(y) / sum(x)
    residuals = [a - r * b for a, b in zip(y, x, strict=True)]
    half = sps.t.ppf(0.975, 3) * np.std(residuals, ddof=1) / (np.mean(x) * math.sqrt(4))
    assert v.mean == pytest.approx(r) and v.half_width == pytest.approx(half)
    assert v.mean != pytest.approx(np.mean(np.divide(y, x)))  # not the mean of the ratios


def test_the_ratio_interval_covers_a_known_ratio() -> None:
    """Pairs with E[y] / E[x] = 0.25: about 95% of the intervals hold it (400 of them)."""
    gen = np.random.default_rng(3)
    held = 0
    for _ in range(400):
        x = gen.exponential(4.0, 30)
        y = 0.25 * x + gen.normal(0.0, 0.3, 30)
        held += ratio_interval(y, x).contains(0.25)
    assert 360 <= held <= 396


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="two replications"):
        ratio_interval([1.0], [2.0])
    with pytest.raises(ValueError, match="two replications"):
        ratio_interval([1.0, 2.0], [2.0])
    with pytest.raises(ValueError, match="positive denominator"):
        ratio_interval([1.0, 2.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="two replications"):
        t_interval([1.0])


def test_seed_streams_are_stable_and_distinct() -> None:
    first = [int(np.random.default_rng(s).integers(0, 2**62)) for s in seed_streams(7, 2)]
    again = [int(np.random.default_rng(s).integers(0, 2**62)) for s in seed_streams(7, 2)]
    other = [int(np.random.default_rng(s).integers(0, 2**62)) for s in seed_streams(8, 2)]
    assert first == again and first[0] != first[1] and set(first).isdisjoint(other)
