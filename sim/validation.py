"""The queues against Erlang B (M/M/c/c blocking) and Erlang C (M/M/c mean wait), point by point.

`validate_grid`, `validate_point` and `roomtrust sim validate` run independent replications of
each (model, c, load) point, put a confidence interval on them and compare it with the exact
value from `sim.erlang`. Time is in mean service times (mu = 1); `load` is lambda / (c mu).

- Two methods, one per point. DIRECT runs the SimPy queues of `sim.queueing` (or, with
  `server_pool`, the capacity models' `sim.service.ServerPool`) for a stretch sized by
  all-busy episodes (`sim.queueing.run_length`). Where that stretch cannot expect
  `MIN_EPISODES` episodes within the customer cap (with the defaults: c = 150 at loads up to 0.80
  and c = 50 up to 0.65; Erlang B is 8.5e-15 at c = 150, load 0.5), the point is run with
  IMPORTANCE sampling instead: regenerative cycles of the same birth-death process, the rise to
  all-busy made frequent by a change of measure and weighted back by its likelihood ratio
  (`sim.rare`, whose docstring has the method). `method="importance-sampling"` runs every point
  that way, a cross-check of the two; `method="direct"` runs every point directly, which shows
  why the rare points need the other method (their intervals collapse on zero).
- Start and warm-up. Every replication starts from the stationary distribution of the number in
  system and deletes a warm-up: a stretch of service times (direct) or everything before the
  first regeneration (importance sampling). `start="empty"` starts empty instead.
- Intervals. 30 independent replications per point (`MIN_REPLICATIONS`), each on its own seed
  stream spawned from the point's key (the same streams whatever the method), and a two-sided
  Student-t interval with R - 1 degrees of freedom. Direct: on one estimate per replication (the
  blocked fraction; the mean wait of the measured customers). Importance sampling: on the ratio
  of the likelihood-weighted sums pooled over the replications (blocked or waits over arrivals),
  with the delta-method standard error of regenerative simulation (`sim.stats.ratio_interval`).
  Each replication's own ratio is biased by order 1 / cycles: measured at c = 50, load 0.6 over
  1,200 replications of 2,000 all-busy cycles, +0.5% (2.3 standard errors), 0.17 of a 95%
  half-width; pooling the 30 divides that by 30.
- Verdict. k intervals at 95% each miss about 0.05 k of them by chance, so "every 95% interval
  holds" is no sound criterion. The verdict is family-wise: every point's interval at the
  Bonferroni level 1 - 0.05 / k must hold its exact value, which is a 95% simultaneous confidence
  statement over the grid. The per-point 95% intervals are reported beside it, with the number
  that miss against the 0.05 k expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats as sps

from sim import queueing, rare
from sim.erlang import erlang_b, erlang_c_mean_wait
from sim.queueing import LOSS, MIN_EPISODES, MODELS, STATIONARY, RunLength
from sim.stats import Interval, ratio_interval, t_interval

LEVEL = 0.95
MIN_REPLICATIONS = 30
CHUNK = 5  # replications per executor task: fewer, larger tasks
GRID_SERVERS = (5, 15, 50, 150)
GRID_LOADS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
DIRECT, IMPORTANCE, AUTO = "direct", "importance-sampling", "auto"
METHODS = (AUTO, DIRECT, IMPORTANCE)


class Estimates(Protocol):
    """What a replication of either method offers the intervals."""

    @property
    def customers(self) -> int: ...

    @property
    def events(self) -> int: ...

    @property
    def blocking(self) -> float: ...

    @property
    def mean_wait(self) -> float: ...


@dataclass(frozen=True)
class Plan:
    """How one point is run: its method, and the run length (direct) or all-busy cycles (importance
    sampling) of each replication; `episodes` is what a replication expects (direct) or runs to
    (importance sampling) of all-busy episodes."""

    method: str
    length: RunLength
    hits: int
    episodes: float

    def cost(self, c: int, load: float) -> float:
        """Customers one replication simulates, roughly (to hand out the longest tasks first)."""
        if self.method == DIRECT:
            return self.length.horizon * load * c
        return self.hits * 4.0 * c  # measured: about 4 c customers per all-busy cycle


def plan_point(
    model: str,
    c: int,
    load: float,
    method: str = AUTO,
    min_episodes: float = MIN_EPISODES,
    hits: int = rare.HITS,
    **length: Any,
) -> Plan:
    """The plan of one point: DIRECT where its run can expect `min_episodes` all-busy episodes
    (`length` goes to `sim.queueing.run_length`), otherwise, or always with
    `method="importance-sampling"`, IMPORTANCE sampling to `hits` all-busy cycles."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"servers must be a positive integer, not {c!r}")
    if not 0 < load < (math.inf if model == LOSS else 1):
        raise ValueError(f"load {load} is outside the model's range")
    run = queueing.run_length(model, c, load, **length)
    episodes = queueing.expected_episodes(model, c, load, run)
    direct = method == DIRECT or (method == AUTO and episodes >= min_episodes)
    if direct:
        return Plan(DIRECT, run, 0, episodes)
    return Plan(IMPORTANCE, run, hits, float(hits))


def run_chunk(
    plan: Plan,
    model: str,
    c: int,
    load: float,
    seeds: list[np.random.SeedSequence],
    start: str,
    service_rate: float,
    server_pool: bool,
) -> Sequence[Estimates]:
    """Replications of one point on the given seeds (one task for an executor), in seed order."""
    if plan.method == IMPORTANCE:
        return rare.replicate_all(model, c, load, seeds, plan.hits, start, service_rate)
    return queueing.replicate_all(
        model, c, load, seeds, plan.length, start, service_rate, server_pool
    )


@dataclass(frozen=True)
class Validation:
    """Replication estimates next to the exact Erlang value for one (model, c, load) point:
    `estimate` is the 95% Student-t interval of blocking (or mean wait) over the replications,
    `simultaneous` the same at the grid's family-wise (Bonferroni) level."""

    model: str
    c: int
    load: float
    method: str
    replications: int
    customers: int
    events: int
    episodes: float
    exact: float
    estimate: Interval
    simultaneous: Interval
    skewness: float

    @property
    def metric(self) -> str:
        return "blocking (Erlang B)" if self.model == LOSS else "mean wait (Erlang C)"

    @property
    def contains(self) -> bool:
        return self.estimate.contains(self.exact)

    @property
    def contains_simultaneous(self) -> bool:
        return self.simultaneous.contains(self.exact)

    @property
    def relative_half_width(self) -> float:
        return self.estimate.half_width / self.exact if self.exact > 0 else math.inf

    @property
    def distance(self) -> float:
        """|mean - exact| in 95% half-widths (1 is the interval's edge)."""
        return abs(self.estimate.mean - self.exact) / max(self.estimate.half_width, 1e-300)

    def row(self) -> dict[str, object]:
        return {
            "model": self.model,
            "metric": self.metric,
            "c": self.c,
            "load": self.load,
            "method": self.method,
            "replications": self.replications,
            "customers": self.customers,
            "events": self.events,
            "episodes_per_replication": self.episodes,
            "exact": self.exact,
            "mean": self.estimate.mean,
            "ci95_low": self.estimate.low,
            "ci95_high": self.estimate.high,
            "contains95": self.contains,
            "family_level": self.simultaneous.level,
            "family_low": self.simultaneous.low,
            "family_high": self.simultaneous.high,
            "contains_family": self.contains_simultaneous,
            "skewness": self.skewness,
        }


def point_seeds(
    root: int, model: str, c: int, load: float, replications: int
) -> list[np.random.SeedSequence]:
    """Seed streams of one validation point: independent of every other point's streams."""
    key = [root, MODELS.index(model), c, round(load * 10_000)]
    return np.random.SeedSequence(key).spawn(replications)


def exact_value(model: str, c: int, load: float) -> float:
    """Erlang B blocking (loss) or the Erlang C mean wait (delay), with mu = 1."""
    return erlang_b(c, load * c) if model == LOSS else erlang_c_mean_wait(c, load * c, 1.0)


def summarise(
    model: str,
    c: int,
    load: float,
    reps: Sequence[Estimates],
    family_level: float = LEVEL,
    method: str = DIRECT,
    episodes: float = math.nan,
) -> Validation:
    """The intervals of one point from its replications: Student-t on the replication estimates
    (direct), or on the ratio of the likelihood-weighted sums pooled over the replications
    (importance sampling, whose per-replication ratios carry a bias of order 1 / cycles)."""
    values = [r.blocking if model == LOSS else r.mean_wait for r in reps]
    skewness = float(sps.skew(values)) if len(set(values)) > 1 else 0.0
    if method == IMPORTANCE:
        weighted = [r for r in reps if isinstance(r, rare.WeightedReplication)]
        if len(weighted) != len(reps):
            raise ValueError("importance-sampled points need weighted replications")
        terms = [r.blocked if model == LOSS else r.wait_sum for r in weighted]
        totals = [r.arrivals for r in weighted]
        estimate = ratio_interval(terms, totals, LEVEL)
        simultaneous = ratio_interval(terms, totals, family_level)
    else:
        estimate, simultaneous = t_interval(values, LEVEL), t_interval(values, family_level)
    return Validation(
        model,
        c,
        load,
        method,
        len(reps),
        sum(r.customers for r in reps),
        sum(r.events for r in reps),
        episodes,
        exact_value(model, c, load),
        estimate,
        simultaneous,
        skewness,
    )


@dataclass(frozen=True)
class GridResult:
    """Every point of a validation grid, and the grid's verdict."""

    points: list[Validation]
    family_level: float

    def by_method(self, method: str) -> list[Validation]:
        return [v for v in self.points if v.method == method]

    @property
    def misses(self) -> list[Validation]:
        """Points whose per-point 95% interval misses the exact value."""
        return [v for v in self.points if not v.contains]

    @property
    def family_misses(self) -> list[Validation]:
        """Points whose family-wise (Bonferroni) interval misses the exact value."""
        return [v for v in self.points if not v.contains_simultaneous]

    @property
    def expected_misses(self) -> float:
        """Per-point 95% misses that chance alone gives, on average."""
        return (1 - LEVEL) * len(self.points)

    @property
    def passed(self) -> bool:
        """The family-wise verdict: every point's Bonferroni interval holds its exact value, a
        statement with 95% simultaneous confidence."""
        return bool(self.points) and not self.family_misses


def bonferroni_level(intervals: int, level: float = LEVEL) -> float:
    """The per-interval level at which `intervals` intervals hold together with `level`."""
    return 1 - (1 - level) / max(intervals, 1)


def grid_points(
    servers: Sequence[int] = GRID_SERVERS, loads: Sequence[float] = GRID_LOADS
) -> list[tuple[str, int, float]]:
    return [(model, c, load) for model in MODELS for c in servers for load in loads]


def run_points(
    points: Sequence[tuple[str, int, float]],
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    start: str = STATIONARY,
    service_rate: float = 1.0,
    server_pool: bool = False,
    method: str = AUTO,
    min_episodes: float = MIN_EPISODES,
    hits: int = rare.HITS,
    **length: Any,
) -> tuple[list[Plan], list[list[Estimates]]]:
    """Each point's plan and replications (in seed order), all of them in one batch on `executor`,
    longest tasks first so the workers finish together. `method`, `min_episodes`, `hits` and
    `length` make each point's `Plan`; `server_pool` runs the direct delay points on
    `sim.service.ServerPool`. The numbers depend on the seed only, not on the executor."""
    if replications < 2:
        raise ValueError("a confidence interval needs at least two replications")
    plans = [plan_point(*point, method, min_episodes, hits, **length) for point in points]
    tasks: list[tuple[int, list[np.random.SeedSequence]]] = []
    for index, (model, c, load) in enumerate(points):
        streams = point_seeds(seed, model, c, load, replications)
        tasks += [(index, streams[i : i + CHUNK]) for i in range(0, replications, CHUNK)]

    def cost(task: tuple[int, list[np.random.SeedSequence]]) -> float:
        _, c, load = points[task[0]]
        return plans[task[0]].cost(c, load) * len(task[1])

    order = sorted(range(len(tasks)), key=lambda i: -cost(tasks[i]))
    mapper: Callable[..., Iterator[Sequence[Estimates]]] = executor.map if executor else map
    results = mapper(
        run_chunk,
        [plans[tasks[i][0]] for i in order],
        [points[tasks[i][0]][0] for i in order],
        [points[tasks[i][0]][1] for i in order],
        [points[tasks[i][0]][2] for i in order],
        [tasks[i][1] for i in order],
        [start] * len(order),
        [service_rate] * len(order),
        [server_pool] * len(order),
    )
    per_point: list[list[Estimates]] = [[] for _ in points]
    chunks = dict(zip(order, results, strict=True))
    for i, (index, _) in enumerate(tasks):  # task order is seed order within each point
        per_point[index].extend(chunks[i])
    return plans, per_point


def validate_grid(
    points: Sequence[tuple[str, int, float]],
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    **options: Any,
) -> GridResult:
    """One `Validation` per point from `run_points` (which takes the `options`); the family-wise
    level is Bonferroni's over the points."""
    plans, reps = run_points(points, replications, seed, executor, **options)
    level = bonferroni_level(len(points))
    out = [
        summarise(*point, reps[i], level, plans[i].method, plans[i].episodes)
        for i, point in enumerate(points)
    ]
    return GridResult(out, level)


def validate_point(
    model: str,
    c: int,
    load: float,
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    **options: Any,
) -> Validation:
    """Run independent replications of one point and compare with Erlang B (loss) or C (wait)."""
    return validate_grid([(model, c, load)], replications, seed, executor, **options).points[0]
