"""Replication statistics: seed streams and confidence intervals.

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


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float], level: float = 0.95
) -> Interval:
    """Student-t interval for a ratio of means, sum(y) / sum(x), from independent replications
    (y_r, x_r): the delta-method interval of regenerative simulation, with standard deviation
    that of the residuals y_r - r x_r, divided by mean(x) sqrt(R). Pooling the replications
    before dividing keeps the ratio's small-sample bias that of all R replications together."""
    y, x = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    n = len(y)
    if n < 2 or len(x) != n:
        raise ValueError("a ratio interval needs at least two replications of both terms")
    if x.sum() <= 0:
        raise ValueError("a ratio interval needs a positive denominator")
    ratio = float(y.sum() / x.sum())
    spread = float((y - ratio * x).std(ddof=1) / (x.mean() * math.sqrt(n)))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * spread
    return Interval(ratio, ratio - half, ratio + half, n, level)
