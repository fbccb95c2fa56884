"""Replication statistics: seed streams, 95% confidence intervals, warm-up deletion helpers.

Every replication draws from its own stream, spawned from one root `numpy.random.SeedSequence`,
so a replication's numbers do not depend on which worker runs it or in which order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


def seed_streams(root: int, count: int) -> list[np.random.SeedSequence]:
    """`count` independent child seed sequences of the root seed (stable for a given root)."""
    return np.random.SeedSequence(root).spawn(count)


def rng(seed: np.random.SeedSequence | int) -> np.random.Generator:
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student-t interval for the mean of independent replication results."""
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n < 2:
        raise ValueError("a confidence interval needs at least two replications")
    mean = float(data.mean())
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * data.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, level)


def proportion_interval(successes: int, trials: int, level: float = 0.95) -> Interval:
    """Clopper-Pearson (exact binomial) interval; used when replications saw no event at all,
    where a t interval would collapse to a single point."""
    if trials < 1:
        raise ValueError("a proportion needs at least one trial")
    alpha = 1 - level
    low = (
        0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, successes, trials - successes + 1))
    )
    high = (
        1.0
        if successes == trials
        else float(sps.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    )
    return Interval(successes / trials, low, high, trials, level)
