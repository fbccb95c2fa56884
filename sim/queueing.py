"""M/M/c/c and M/M/c queues in SimPy, and how long a replication of them runs.

The models: arrivals come from one SimPy process; a departure is a timeout event with a callback
rather than a process per customer (a process per customer costs far more, see the design notes).
Arrivals after the horizon stop, and the run continues until every measured customer has been
served, so each measured wait is complete. Customers arriving before the warm-up time are not
measured. Time is in mean service times (mu = 1); `load` is the per-server utilisation
lambda / (c mu). `sim.validation` compares them with Erlang B and C.

- Start state. Each replication STARTS FROM THE STATIONARY DISTRIBUTION of the number in system
  (`stationary_occupancy`: truncated Poisson for M/M/c/c; for M/M/c, Erlang C decides whether all
  servers are busy, then a geometric queue). With exponential service the residual service times
  are fresh exponentials, so the model as specified is in steady state from time 0 and no
  initialisation bias remains; a warm-up is still deleted (10 service times for the loss system,
  the larger of that and three relaxation times 1 / (sqrt(c) - sqrt(a))^2 for the delay queue),
  so that a model whose dynamics differ from the one the start state assumes drifts away from it
  before measurement begins. `start="empty"` starts empty instead (the negative test shows that an
  empty start without warm-up at load 0.95 is caught).
- Diagnosis behind the run lengths. Measured over 600 replications each, the earlier plans (runs of
  a few thousand customers, empty start) had no significant initialisation bias at their worst
  points (mean within 1.5 standard errors of Erlang C at c = 150, loads 0.8, 0.85 and 0.95,
  and at c = 5, load 0.95), but the replication means of the mean wait were strongly skewed
  (skewness 7 at c = 150, loads 0.8 and 0.85) and only 80-90% of the 95% t intervals held: too
  few independent waiting episodes per replication (about 16 there; waits come in rare bursts at
  large c and moderate load). The misses were under-coverage, not bias.
- Run length, sized by episodes. An episode starts each time all servers become busy (c - 1 -> c;
  rate c B for M/M/c/c, c C (1 - rho) for M/M/c, `episode_rate`); each brings a burst of blocked or
  waiting customers, and at large c episodes also cluster. A replication runs for `EPISODES`
  expected episodes (at least 20,000 customers; a delay queue also at least 50 relaxation times),
  capped at `MAX_CUSTOMERS` arrivals. Measured at 9,000-10,000 episodes per replication, the
  replication skewness was 0.1 (c = 5, load 0.95), 0.4 (c = 150, load 0.85) and 0.8 (c = 150,
  load 0.95); on the full grid (seed 2024) it stays within +-1.1. A point whose capped run cannot
  expect `MIN_EPISODES` episodes is beyond direct simulation: `sim.validation` runs it with the
  importance sampling of `sim.rare`.
- The queue the capacity models use. `replicate_server_pool` runs the delay queue on
  `sim.service.ServerPool` instead of this module's own FIFO queue. It fires an extra SimPy event
  per request and costs about 2.3 times as much per customer (217k against 500k customers per
  second measured on one core). On the same seed streams the two queues give the same waits (to
  rounding).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from scipy import stats as sps

from sim.erlang import erlang_b, erlang_c
from sim.service import ServerPool

LOSS = "mmcc"
DELAY = "mmc"
MODELS = (LOSS, DELAY)
STATIONARY, EMPTY = "stationary", "empty"
STARTS = (STATIONARY, EMPTY)
EPISODES = 5_000.0
MIN_EPISODES = 2_500.0
MAX_CUSTOMERS = 1_000_000


class BlockDraws:
    """Variates taken one at a time from blocks that `sample(n)` draws (much cheaper than one
    call per variate); they come out from the end of each block."""

    def __init__(self, sample: Callable[[int], np.ndarray], block: int = 8192) -> None:
        self._sample, self._block = sample, block
        self._buf: list[float] = []

    def __call__(self) -> float:
        if not self._buf:
            self._buf = self._sample(self._block).tolist()
        return self._buf.pop()


class ExpDraws(BlockDraws):
    """Exponential variates with the given mean, in the order the generator draws them."""

    def __init__(self, gen: np.random.Generator, mean: float, block: int = 8192) -> None:
        super().__init__(lambda n: gen.exponential(mean, n)[::-1], block)


@dataclass(frozen=True)
class RunLength:
    warmup: float
    horizon: float


def relaxation_time(c: int, load: float) -> float:
    """The relaxation time of an M/M/c queue, 1 / (sqrt(c mu) - sqrt(lambda))^2 with mu = 1."""
    return 1.0 / (math.sqrt(c) - math.sqrt(load * c)) ** 2


def episode_rate(model: str, c: int, load: float) -> float:
    """Expected episodes per service time: entries into the all-servers-busy state (c - 1 -> c).

    An entry starts a run of blocked (loss) or waiting (delay) customers; the rate is
    lambda pi(c - 1) = c pi(c), with pi(c) = B for M/M/c/c and C (1 - rho) for M/M/c.
    """
    a = load * c
    if model == LOSS:
        return c * erlang_b(c, a)
    return c * erlang_c(c, a) * (1 - load)


def run_length(
    model: str,
    c: int,
    load: float,
    episodes: float = EPISODES,
    customers: int = 20_000,
    max_customers: int = MAX_CUSTOMERS,
    relaxations: float = 50.0,
    warmup: float | None = None,
) -> RunLength:
    """Warm-up and horizon (in service times) of one replication.

    The measured stretch is long enough for `episodes` expected all-busy episodes (see
    `episode_rate`), at least `customers` arrivals and, for a delay queue, `relaxations` relaxation
    times, but never more than `max_customers` arrivals. The warm-up is 10 service times (loss:
    occupancy forgets its start as e^-t) or the larger of that and three relaxation times (delay),
    unless `warmup` is given. The plan uses the Erlang value only to decide how long to run, as
    one sizes any validation run.
    """
    a = load * c
    rate = episode_rate(model, c, load)
    measured = max(episodes / rate, customers / a)
    if model == DELAY:
        measured = max(measured, relaxations * relaxation_time(c, load))
    measured = min(measured, max(max_customers, customers) / a)
    if warmup is None:
        warmup = 10.0 if model == LOSS else max(10.0, 3 * relaxation_time(c, load))
    return RunLength(warmup, warmup + measured)


def expected_episodes(model: str, c: int, load: float, length: RunLength) -> float:
    """All-busy episodes one replication of this length expects at the exact value."""
    return episode_rate(model, c, load) * (length.horizon - length.warmup)


@dataclass(frozen=True)
class Replication:
    """Counts of one replication (measured customers only)."""

    arrivals: int
    blocked: int
    waited: int
    wait_sum: float

    @property
    def customers(self) -> int:
        return self.arrivals

    @property
    def events(self) -> int:
        """Blocked (loss) or waiting (delay) customers."""
        return self.blocked + self.waited

    @property
    def blocking(self) -> float:
        return self.blocked / self.arrivals if self.arrivals else 0.0

    @property
    def served(self) -> int:
        return self.arrivals - self.blocked

    @property
    def mean_wait(self) -> float:
        return self.wait_sum / self.served if self.served else 0.0


def stationary_occupancy(model: str, c: int, load: float, gen: np.random.Generator) -> int:
    """A number in system drawn from the exact stationary distribution of the model.

    M/M/c/c: Poisson(a) truncated to 0..c. M/M/c: with probability C(c, a) at least c, then c plus
    a geometric number waiting (P(k) = (1 - rho) rho^k); otherwise Poisson(a) truncated to 0..c-1.
    """
    a = load * c
    if model == DELAY and gen.random() < erlang_c(c, a):
        return c + int(gen.geometric(1 - load)) - 1
    top = c if model == LOSS else c - 1
    weights = sps.poisson.pmf(np.arange(top + 1), a)
    return int(gen.choice(top + 1, p=weights / weights.sum()))


def streams(
    seed: np.random.SeedSequence | int, arrival_rate: float, service_rate: float
) -> tuple[np.random.Generator, ExpDraws, ExpDraws]:
    """A replication's three streams: the start state, interarrival times and service times.

    Separate streams keep the n-th customer's interarrival and service times the same whatever
    order a queue implementation draws them in (common random numbers across implementations).
    """
    gen = np.random.default_rng(seed)
    arrivals, services = (np.random.default_rng(int(s)) for s in gen.integers(0, 2**63, 2))
    return gen, ExpDraws(arrivals, 1.0 / arrival_rate), ExpDraws(services, 1.0 / service_rate)


def replicate(
    model: str,
    c: int,
    load: float,
    seed: np.random.SeedSequence | int,
    length: RunLength,
    start: str = STATIONARY,
    service_rate: float = 1.0,
) -> Replication:
    """One independent replication of an M/M/c/c (`mmcc`) or M/M/c (`mmc`) system.

    `start` is `stationary` (the number in system at time 0 is drawn from the model's exact
    stationary distribution; with exponential service the residual service times are fresh
    exponentials, so the run is in steady state from the start) or `empty`. `service_rate` is the
    simulated servers' rate, 1 for the model the Erlang values describe (another value makes a
    deliberately wrong model, for negative tests).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    if not 0 < load < (math.inf if model == LOSS else 1):
        raise ValueError(f"load {load} is outside the model's range")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, not {start!r}")
    gen, interarrival, service = streams(seed, load * c, service_rate)
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

    if start == STATIONARY:
        present = stationary_occupancy(model, c, load, gen)
        busy = min(present, c)
        for _ in range(busy):
            timeout(service()).callbacks.append(depart)
        waiting.extend([-math.inf] * (present - busy))  # arrived before time 0: never measured
    env.process(arrivals())
    env.run()
    return Replication(arrivals_n, blocked, waited, wait_sum)


def replicate_server_pool(
    c: int,
    load: float,
    seed: np.random.SeedSequence | int,
    length: RunLength,
    start: str = STATIONARY,
    service_rate: float = 1.0,
) -> Replication:
    """One replication of the M/M/c queue built on `sim.service.ServerPool`, the queue the
    capacity models use; same streams, start and measurement as `replicate`. A customer's wait
    is its completion time less its arrival and service times."""
    if not 0 < load < 1:
        raise ValueError(f"load {load} is outside the model's range")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, not {start!r}")
    gen, interarrival, service = streams(seed, load * c, service_rate)
    env = simpy.Environment()
    pool = ServerPool(env, "validation", c)
    warmup, horizon = length.warmup, length.horizon
    counts = [0, 0]  # measured arrivals, waited
    wait_sum = 0.0

    def measure(arrived: float, needed: float) -> Callable[[simpy.Event], None]:
        def done(_event: simpy.Event) -> None:
            nonlocal wait_sum
            wait = env.now - arrived - needed
            if wait > 1e-9 * max(1.0, env.now):  # not rounding noise of a customer served at once
                counts[1] += 1
                wait_sum += wait

        return done

    def arrivals() -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(interarrival())
            now = env.now
            if now >= horizon:
                return
            needed = service()
            served = pool.submit(needed)
            if now >= warmup:
                counts[0] += 1
                served.callbacks.append(measure(now, needed))

    if start == STATIONARY:
        for _ in range(stationary_occupancy(DELAY, c, load, gen)):
            pool.submit(service())  # present at time 0: never measured
    env.process(arrivals())
    env.run()
    return Replication(counts[0], 0, counts[1], wait_sum)


def replicate_all(
    model: str,
    c: int,
    load: float,
    seeds: Sequence[np.random.SeedSequence | int],
    length: RunLength,
    start: str = STATIONARY,
    service_rate: float = 1.0,
    server_pool: bool = False,
) -> list[Replication]:
    """Several replications of one point (one task for an executor), in seed order; the delay
    queue on `ServerPool` if `server_pool`."""
    if server_pool and model == DELAY:
        return [replicate_server_pool(c, load, s, length, start, service_rate) for s in seeds]
    return [replicate(model, c, load, seed, length, start, service_rate) for seed in seeds]
