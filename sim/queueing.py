"""M/M/c/c and M/M/c queues in SimPy, validated against Erlang B (blocking) and Erlang C (mean wait).

The models: arrivals come from one SimPy process; a departure is a timeout event with a callback
rather than a process per customer (a process per customer costs far more, see the design notes).
Arrivals after the horizon stop, and the run continues until every measured customer has been
served, so each measured wait is complete. Customers arriving before the warm-up time are not
measured. Time is in mean service times (mu = 1); `load` is the per-server utilisation
lambda / (c mu).

The statistics (`validate_point`, `validate_grid`):
- independent replications (at least 30), each with its own seed stream spawned from the point's
  key, each starting empty and deleting a warm-up: 10 service times for a loss system (its
  occupancy forgets its start as e^-t), five relaxation times 1 / (sqrt(c) - sqrt(a))^2 for a delay
  queue (the time scale on which an M/M/c queue near saturation relaxes);
- one estimate per replication (the blocked fraction; the mean wait of the measured customers) and
  a two-sided Student-t interval on the replication estimates, with R - 1 degrees of freedom;
- the run length is planned from the load: a delay queue runs at least 20 relaxation times after
  its warm-up, and when the events that make the value (blocked, or waiting, customers) are rare
  the run is stretched so that about `rare_events` are expected per replication, up to a cap;
- a point whose replications saw too few events for a t interval to mean anything (fewer than
  `MIN_EVENTS_PER_REPLICATION` on average) is reported as unresolved, with the exact binomial
  (Clopper-Pearson) interval of the pooled event probability against Erlang B or C; it is listed
  apart and is not counted as a validated mean;
- a grid of k intervals at 95% each misses about 0.05 k of them by chance, so the grid verdict is
  family-wise: every interval at level 1 - 0.05 / k (Bonferroni) must hold the exact value, which
  makes all of them hold together with probability >= 95% when the model is right. The coverage
  of the plain 95% intervals is reported beside it, with the number of misses chance explains.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import simpy
from scipy import stats as sps

from sim.erlang import erlang_b, erlang_c, erlang_c_mean_wait
from sim.stats import Interval, proportion_interval, t_interval

LOSS = "mmcc"
DELAY = "mmc"
MODELS = (LOSS, DELAY)
LEVEL = 0.95
MIN_REPLICATIONS = 30
MIN_EVENTS_PER_REPLICATION = 5.0
GRID_SERVERS = (5, 15, 50, 150)
GRID_LOADS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


class ExpDraws:
    """Exponential variates drawn from a generator in blocks (much cheaper than one at a time)."""

    def __init__(self, gen: np.random.Generator, mean: float, block: int = 8192) -> None:
        self._gen, self._mean, self._block = gen, mean, block
        self._buf: list[float] = []

    def __call__(self) -> float:
        if not self._buf:
            self._buf = self._gen.exponential(self._mean, self._block).tolist()
            self._buf.reverse()
        return self._buf.pop()


@dataclass(frozen=True)
class RunLength:
    warmup: float
    horizon: float


def relaxation_time(c: int, load: float) -> float:
    """The relaxation time of an M/M/c queue, 1 / (sqrt(c mu) - sqrt(lambda))^2 with mu = 1."""
    return 1.0 / (math.sqrt(c) - math.sqrt(load * c)) ** 2


def run_length(
    model: str,
    c: int,
    load: float,
    customers: int = 5_000,
    rare_events: int = 25,
    max_customers: int = 100_000,
    relaxations: float = 20.0,
) -> RunLength:
    """Warm-up and horizon (in service times) of one replication.

    Loss: a 10-service-time warm-up, then `customers` arrivals, stretched towards `rare_events`
    blocked ones (at most `max_customers`; not at all when even that many could not show
    `MIN_EVENTS_PER_REPLICATION`). Delay: a warm-up of five relaxation times, then at least
    `relaxations` relaxation times and the same customer rule for waiting customers. The plan uses
    the Erlang value only to decide how long to run, as one sizes any validation run.
    """
    a = load * c
    p_event = erlang_b(c, a) if model == LOSS else erlang_c(c, a)
    if p_event * max_customers < MIN_EVENTS_PER_REPLICATION:
        measured = float(customers)  # not resolvable within the cap: stretching buys nothing
    else:
        measured = min(max(customers, rare_events / p_event), max(max_customers, customers))
    if model == LOSS:
        warmup = 10.0
        return RunLength(warmup, warmup + measured / a)
    relax = relaxation_time(c, load)
    warmup = max(10.0, 5 * relax)
    return RunLength(warmup, warmup + max(measured / a, relaxations * relax))


@dataclass(frozen=True)
class Replication:
    """Counts of one replication (measured customers only)."""

    arrivals: int
    blocked: int
    waited: int
    wait_sum: float

    @property
    def blocking(self) -> float:
        return self.blocked / self.arrivals if self.arrivals else 0.0

    @property
    def served(self) -> int:
        return self.arrivals - self.blocked

    @property
    def mean_wait(self) -> float:
        return self.wait_sum / self.served if self.served else 0.0

    @property
    def wait_probability(self) -> float:
        return self.waited / self.served if self.served else 0.0


def replicate(
    model: str, c: int, load: float, seed: np.random.SeedSequence | int, length: RunLength
) -> Replication:
    """One independent replication of an M/M/c/c (`mmcc`) or M/M/c (`mmc`) system."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    if not 0 < load < (math.inf if model == LOSS else 1):
        raise ValueError(f"load {load} is outside the model's range")
    gen = np.random.default_rng(seed)
    interarrival = ExpDraws(gen, 1.0 / (load * c))
    service = ExpDraws(gen, 1.0)
    env = simpy.Environment()
    timeout = env.timeout
    warmup, horizon, loss = length.warmup, length.horizon, model == LOSS
    waiting: deque[float] = deque()
    busy = arrivals_n = blocked = waited = 0
    wait_sum = 0.0

    def depart(_event: simpy.Event) -> None:
        nonlocal busy, waited, wait_sum
        if waiting:
            arrived = waiting.popleft()
            if arrived >= warmup:
                waited += 1
                wait_sum += env.now - arrived
            timeout(service()).callbacks.append(depart)
        else:
            busy -= 1

    def arrivals() -> Generator[simpy.Event, Any, None]:
        nonlocal busy, arrivals_n, blocked
        while True:
            yield timeout(interarrival())
            now = env.now
            if now >= horizon:
                return
            measured = now >= warmup
            arrivals_n += measured
            if busy < c:
                busy += 1
                timeout(service()).callbacks.append(depart)
            elif loss:
                blocked += measured
            else:
                waiting.append(now)

    env.process(arrivals())
    env.run()
    return Replication(arrivals_n, blocked, waited, wait_sum)


@dataclass(frozen=True)
class Validation:
    """Replication estimates next to the exact Erlang value for one (model, c, load) point.

    `estimate` is the 95% interval, `simultaneous` the one at the grid's family-wise level.
    `method` is "t" (Student-t on the replication estimates of blocking or mean wait) or
    "binomial" (too few events to resolve the value: the exact binomial interval of the pooled
    event probability, blocking or P(wait), against Erlang B or C).
    """

    model: str
    c: int
    load: float
    replications: int
    customers: int
    events: int
    method: str
    exact: float
    estimate: Interval
    simultaneous: Interval
    exact_wait_probability: float
    wait_probability: Interval

    @property
    def resolved(self) -> bool:
        return self.method == "t"

    @property
    def target(self) -> float:
        """The exact value the intervals are checked against."""
        if self.resolved or self.model == LOSS:
            return self.exact
        return self.exact_wait_probability

    @property
    def contains(self) -> bool:
        return self.estimate.contains(self.target)

    @property
    def contains_simultaneous(self) -> bool:
        return self.simultaneous.contains(self.target)

    @property
    def relative_half_width(self) -> float:
        return self.estimate.half_width / self.target if self.target > 0 else math.inf

    def row(self) -> dict[str, object]:
        return {
            "model": self.model,
            "metric": _metric(self.model, self.resolved),
            "c": self.c,
            "load": self.load,
            "replications": self.replications,
            "customers": self.customers,
            "events": self.events,
            "method": self.method,
            "exact": self.target,
            "mean": self.estimate.mean,
            "ci_low": self.estimate.low,
            "ci_high": self.estimate.high,
            "contains": self.contains,
            "family_level": self.simultaneous.level,
            "family_low": self.simultaneous.low,
            "family_high": self.simultaneous.high,
            "contains_family": self.contains_simultaneous,
            "pw_exact": self.exact_wait_probability,
            "pw_low": self.wait_probability.low,
            "pw_high": self.wait_probability.high,
        }


def _metric(model: str, resolved: bool) -> str:
    if model == LOSS:
        return "blocking (Erlang B)"
    return "mean wait (Erlang C)" if resolved else "P(wait) (Erlang C)"


def point_seeds(
    root: int, model: str, c: int, load: float, replications: int
) -> list[np.random.SeedSequence]:
    """Seed streams of one validation point: independent of every other point's streams."""
    key = [root, MODELS.index(model), c, round(load * 10_000)]
    return np.random.SeedSequence(key).spawn(replications)


def summarise(
    model: str,
    c: int,
    load: float,
    reps: Sequence[Replication],
    family_level: float = LEVEL,
) -> Validation:
    """The intervals of one point from its replications."""
    n = len(reps)
    a = load * c
    arrivals = sum(r.arrivals for r in reps)
    served = sum(r.served for r in reps)
    if model == LOSS:
        events, trials = sum(r.blocked for r in reps), arrivals
        values = [r.blocking for r in reps]
        exact, exact_pw = erlang_b(c, a), 0.0
    else:
        events, trials = sum(r.waited for r in reps), served
        values = [r.mean_wait for r in reps]
        exact, exact_pw = erlang_c_mean_wait(c, a, 1.0), erlang_c(c, a)
    resolved = events >= MIN_EVENTS_PER_REPLICATION * n
    if resolved:
        estimate = t_interval(values, LEVEL)
        simultaneous = t_interval(values, family_level)
    else:
        estimate = proportion_interval(events, trials, LEVEL)
        simultaneous = proportion_interval(events, trials, family_level)
    if model == DELAY:
        pw = proportion_interval(events, trials, LEVEL)
    else:
        pw = proportion_interval(0, max(served, 1), LEVEL)
    return Validation(
        model,
        c,
        load,
        n,
        arrivals,
        events,
        "t" if resolved else "binomial",
        exact,
        estimate,
        simultaneous,
        exact_pw,
        pw,
    )


def validate_point(
    model: str,
    c: int,
    load: float,
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    family_level: float = LEVEL,
    **length: Any,
) -> Validation:
    """Run independent replications of one point and compare with Erlang B (loss) or C (wait)."""
    return validate_grid(
        [(model, c, load)], replications, seed, executor, family_level, **length
    ).points[0]


@dataclass(frozen=True)
class GridResult:
    """Every point of a validation grid, and the grid's verdict."""

    points: list[Validation]
    family_level: float

    @property
    def resolved(self) -> list[Validation]:
        return [v for v in self.points if v.resolved]

    @property
    def unresolved(self) -> list[Validation]:
        return [v for v in self.points if not v.resolved]

    @property
    def misses(self) -> list[Validation]:
        """Points whose plain 95% interval misses the exact value."""
        return [v for v in self.points if not v.contains]

    @property
    def expected_misses(self) -> float:
        return (1 - LEVEL) * len(self.points)

    @property
    def misses_p_value(self) -> float:
        """P(at least this many 95% misses) if every interval were exact: small means too many."""
        return float(sps.binom.sf(len(self.misses) - 1, len(self.points), 1 - LEVEL))

    @property
    def passed(self) -> bool:
        """Family-wise: every interval at the Bonferroni level holds its exact value."""
        return all(v.contains_simultaneous for v in self.points)


def bonferroni_level(intervals: int, level: float = LEVEL) -> float:
    """The per-interval level at which `intervals` intervals hold together with `level`."""
    return 1 - (1 - level) / max(intervals, 1)


def grid_points(
    servers: Sequence[int] = GRID_SERVERS, loads: Sequence[float] = GRID_LOADS
) -> list[tuple[str, int, float]]:
    return [(model, c, load) for model in MODELS for c in servers for load in loads]


def validate_grid(
    points: Sequence[tuple[str, int, float]],
    replications: int = MIN_REPLICATIONS,
    seed: int = 2024,
    executor: Executor | None = None,
    family_level: float | None = None,
    **length: Any,
) -> GridResult:
    """All replications of all points in one batch on `executor` (longest first, so two workers
    finish together), then one `Validation` per point. `family_level` defaults to the Bonferroni
    level of the grid. The numbers depend on the seed only, not on the executor."""
    if replications < 2:
        raise ValueError("a confidence interval needs at least two replications")
    level = family_level if family_level is not None else bonferroni_level(len(points))
    tasks: list[tuple[int, str, int, float, np.random.SeedSequence, RunLength]] = []
    for index, (model, c, load) in enumerate(points):
        plan = run_length(model, c, load, **length)
        for stream in point_seeds(seed, model, c, load, replications):
            tasks.append((index, model, c, load, stream, plan))
    order = sorted(
        range(len(tasks)), key=lambda i: -tasks[i][5].horizon * tasks[i][3] * tasks[i][2]
    )
    mapper: Callable[..., Iterator[Replication]] = executor.map if executor else map
    results = mapper(
        replicate,
        [tasks[i][1] for i in order],
        [tasks[i][2] for i in order],
        [tasks[i][3] for i in order],
        [tasks[i][4] for i in order],
        [tasks[i][5] for i in order],
    )
    by_task: list[Replication | None] = [None] * len(tasks)
    for i, rep in zip(order, results, strict=True):
        by_task[i] = rep
    out = []
    for index, (model, c, load) in enumerate(points):
        reps = [r for t, r in zip(tasks, by_task, strict=True) if t[0] == index and r is not None]
        out.append(summarise(model, c, load, reps, level))
    return GridResult(out, level)


def as_dict(length: RunLength) -> dict[str, float]:
    return asdict(length)
