"""M/M/c/c and M/M/c queues in SimPy, for validating the simulator against Erlang B and C.

Arrivals come from one SimPy process; a departure is a timeout event with a callback rather than a
process per customer (a process per customer costs far more, see the design notes). Arrivals after
the horizon stop, and the run continues until every measured customer has been served, so each
measured wait is complete. Customers arriving before the warm-up time are not measured.

Time is in mean service times (mu = 1); `load` is the per-server utilisation lambda / (c mu).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import simpy

from sim.erlang import erlang_b, erlang_c, erlang_c_mean_wait
from sim.stats import Interval, proportion_interval, t_interval

LOSS = "mmcc"
DELAY = "mmc"
MODELS = (LOSS, DELAY)


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


def run_length(
    model: str,
    c: int,
    load: float,
    customers: int = 20_000,
    rare_events: int = 200,
    stretch: int = 50,
) -> RunLength:
    """Warm-up and horizon (in service times) for one replication.

    A loss system forgets its start within a few service times. A delay queue relaxes on the scale
    1 / (sqrt(c) - sqrt(a))^2, which grows sharply as the load nears 1; the run covers at least 40
    of those so replication means are close to normal, and warm-up deletes the first 5. When
    blocking (or waiting) is rare, the run is stretched so that about `rare_events` measured
    customers are expected to block (or wait), capped at `stretch` times `customers`.
    """
    a = load * c
    p_event = erlang_b(c, a) if model == LOSS else erlang_c(c, a)
    if p_event > 0:
        customers = int(min(stretch * customers, max(customers, rare_events / p_event)))
    if model == LOSS:
        warmup = 10.0
        return RunLength(warmup, warmup + customers / a)
    relax = 1.0 / (math.sqrt(c) - math.sqrt(a)) ** 2
    warmup = max(10.0, 5 * relax)
    return RunLength(warmup, warmup + max(customers / a, 40 * relax))


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
    state = {"busy": 0, "arrivals": 0, "blocked": 0, "waited": 0, "wait_sum": 0.0}
    waiting: deque[float] = deque()

    def depart(_event: simpy.Event) -> None:
        if waiting:
            arrived = waiting.popleft()
            if arrived >= length.warmup:
                state["waited"] += 1
                state["wait_sum"] += env.now - arrived
            env.timeout(service()).callbacks.append(depart)
        else:
            state["busy"] -= 1

    def arrivals() -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(interarrival())
            now = env.now
            if now >= length.horizon:
                return
            measured = now >= length.warmup
            state["arrivals"] += measured
            if state["busy"] < c:
                state["busy"] += 1
                env.timeout(service()).callbacks.append(depart)
            elif model == LOSS:
                state["blocked"] += measured
            else:
                waiting.append(now)

    env.process(arrivals())
    env.run()
    return Replication(
        int(state["arrivals"]), int(state["blocked"]), int(state["waited"]), state["wait_sum"]
    )


@dataclass(frozen=True)
class Validation:
    """Replication estimates next to the exact Erlang value for one (model, c, load) point."""

    model: str
    c: int
    load: float
    replications: int
    customers: int
    exact: float
    estimate: Interval
    exact_wait_probability: float
    wait_probability: Interval

    @property
    def resolved(self) -> bool:
        """Whether the run saw the events the value is made of (blocked or waiting customers)."""
        return self.estimate.high > 0

    @property
    def contains(self) -> bool:
        """The 95% interval holds the exact value; for a delay queue that saw no customer wait,
        the exact binomial interval of P(wait) holds the Erlang C probability."""
        if self.model == DELAY and not self.resolved:
            return self.wait_probability.contains(self.exact_wait_probability)
        return self.estimate.contains(self.exact)

    def row(self) -> dict[str, object]:
        return {
            "model": self.model,
            "c": self.c,
            "load": self.load,
            "replications": self.replications,
            "customers": self.customers,
            "exact": self.exact,
            "mean": self.estimate.mean,
            "ci_low": self.estimate.low,
            "ci_high": self.estimate.high,
            "contains": self.contains,
        }


def point_seeds(
    root: int, model: str, c: int, load: float, replications: int
) -> list[np.random.SeedSequence]:
    """Seed streams of one validation point: independent of every other point's streams."""
    key = [root, MODELS.index(model), c, round(load * 10_000)]
    return np.random.SeedSequence(key).spawn(replications)


def _estimate(values: list[float], events: int, trials: int) -> Interval:
    if events == 0:
        # No replication saw a single event: the t interval is a point; the exact binomial
        # interval on the pooled count is the honest statement of what the run can resolve.
        return proportion_interval(0, trials)
    return t_interval(values)


def validate_point(
    model: str,
    c: int,
    load: float,
    replications: int = 10,
    seed: int = 2024,
    customers: int = 20_000,
    executor: Executor | None = None,
    stretch: int = 50,
) -> Validation:
    """Run independent replications of one point and compare with Erlang B (loss) or C (wait)."""
    length = run_length(model, c, load, customers, stretch=stretch)
    seeds = point_seeds(seed, model, c, load, replications)
    mapper: Callable[..., Iterator[Replication]] = executor.map if executor else map
    reps = list(
        mapper(
            replicate,
            [model] * replications,
            [c] * replications,
            [load] * replications,
            seeds,
            [length] * replications,
        )
    )
    arrivals = sum(r.arrivals for r in reps)
    served = sum(r.served for r in reps)
    a = load * c
    if model == LOSS:
        blocked = sum(r.blocked for r in reps)
        estimate = _estimate([r.blocking for r in reps], blocked, arrivals)
        exact, exact_pw = erlang_b(c, a), 0.0
        pw = proportion_interval(0, served)
    else:
        waited = sum(r.waited for r in reps)
        exact = erlang_c_mean_wait(c, a, 1.0)
        exact_pw = erlang_c(c, a)
        pw = _estimate([r.wait_probability for r in reps], waited, served)
        if waited == 0:
            estimate = Interval(0.0, 0.0, 0.0, replications)
        else:
            estimate = t_interval([r.mean_wait for r in reps])
    return Validation(model, c, load, replications, arrivals, exact, estimate, exact_pw, pw)


def as_dict(length: RunLength) -> dict[str, float]:
    return asdict(length)
