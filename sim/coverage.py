"""How often the validation's 95% intervals hold the exact value: a check of the checker.

`interval_coverage` (and `roomtrust sim coverage`) runs `sets` independent validations of one
point, each with its own `replications` seed streams, and counts the 95% intervals that hold
the Erlang value. An interval method that works holds it in about 95% of the sets; the binomial
probability of holding it so rarely by chance (`p_value`) tells a shortfall from bad luck. The
mean relative error over the sets shows a bias too small for one interval to reveal.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from sim.validation import LEVEL, MIN_REPLICATIONS, run_points, summarise


@dataclass(frozen=True)
class Coverage:
    """`held` of `sets` independent 95% intervals of one point hold its exact value."""

    model: str
    c: int
    load: float
    method: str
    sets: int
    replications: int
    held: int
    exact: float
    relative_errors: tuple[float, ...]

    @property
    def mean_relative_error(self) -> float:
        """Mean of (estimate - exact) / exact over the sets."""
        return float(np.mean(self.relative_errors))

    @property
    def standard_error(self) -> float:
        """Standard error of `mean_relative_error`."""
        return float(np.std(self.relative_errors, ddof=1) / math.sqrt(self.sets))

    @property
    def p_value(self) -> float:
        """The probability that `held` or fewer of the sets hold, were each to hold with 95%."""
        return float(sps.binom.cdf(self.held, self.sets, LEVEL))


def interval_coverage(
    model: str,
    c: int,
    load: float,
    sets: int,
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    **options: Any,
) -> Coverage:
    """`sets` validations of one point, each on `replications` independent seed streams (all
    spawned from `seed` and the point), in one batch; `options` go to `run_points`."""
    if sets < 2:
        raise ValueError("coverage needs at least two sets")
    point = (model, c, load)
    plans, reps = run_points([point], sets * replications, seed, executor, **options)
    plan, runs = plans[0], reps[0]
    checks = [
        summarise(*point, runs[i : i + replications], LEVEL, plan.method, plan.episodes)
        for i in range(0, sets * replications, replications)
    ]
    exact = checks[0].exact
    return Coverage(
        model,
        c,
        load,
        plan.method,
        sets,
        replications,
        sum(v.contains for v in checks),
        exact,
        tuple((v.estimate.mean - exact) / exact for v in checks),
    )
