"""The SimPy M/M/c/c and M/M/c models against Erlang B and Erlang C.

A representative subset runs in every `make test` with fixed seeds: c = 5 (both models, light and
heavy load), c = 15 and 50, and c = 150 at a high (0.95) and a moderate (0.85) load; 30 independent
replications each, stationary start, warm-up deleted, Student-t intervals, the family-wise
(Bonferroni) verdict of the full grid. Its runs are shorter than `roomtrust sim validate` makes
(3,000 all-busy episodes per replication instead of 5,000, at most 120,000 customers, so c = 150
at load 0.85 sees about 700), which widens the intervals. The replication means stay close enough
to normal to test (skewness about 1.5 at c = 150, load 0.85, below 1 elsewhere), although the
far-tail intervals at the short points are a little liberal; the full grid runs 2,500 episodes per
replication or more. The same validation must fail on deliberately wrong
models: servers 5% slower than stated, and an empty start without warm-up at load 0.95.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from scipy import stats as sps

from sim.erlang import erlang_b, erlang_c
from sim.queueing import (
    DELAY,
    EMPTY,
    LOSS,
    MIN_REPLICATIONS,
    GridResult,
    Replication,
    bonferroni_level,
    episode_rate,
    expected_episodes,
    grid_points,
    relaxation_time,
    replicate,
    run_length,
    stationary_occupancy,
    summarise,
    validate_grid,
    validate_point,
)

SUBSET = [
    (LOSS, 5, 0.5),
    (LOSS, 15, 0.8),
    (LOSS, 150, 0.95),
    (LOSS, 150, 0.85),
    (LOSS, 150, 0.5),  # Erlang B ~ 1e-14: no run can see it; reported, not tested
    (DELAY, 5, 0.5),
    (DELAY, 5, 0.95),
    (DELAY, 15, 0.8),
    (DELAY, 150, 0.95),
    (DELAY, 150, 0.85),
]
SHORT = {"episodes": 3_000, "min_episodes": 500, "max_customers": 120_000}


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def subset(pool: ProcessPoolExecutor) -> GridResult:
    return validate_grid(SUBSET, MIN_REPLICATIONS, seed=2024, executor=pool, **SHORT)


def test_a_representative_subset_holds_the_erlang_values(subset: GridResult) -> None:
    assert subset.family_level == pytest.approx(1 - 0.05 / (len(SUBSET) - 1))  # one untested
    missed = [(v.model, v.c, v.load, v.exact, v.simultaneous) for v in subset.family_misses]
    assert subset.passed, missed
    assert len(subset.misses) <= 2  # per-point 95%: chance alone misses about 0.45 of 9
    by_point = {(v.model, v.c, v.load): v for v in subset.points}
    assert [p for p, v in by_point.items() if not v.tested] == [(LOSS, 150, 0.5)]
    for point, v in by_point.items():
        assert v.replications == MIN_REPLICATIONS
        if v.tested:
            assert v.expected_episodes >= SHORT["min_episodes"]
            assert v.relative_half_width < 0.25, (point, v.estimate)
            assert abs(v.skewness) < 2.0, (point, v.skewness)  # sample skewness of 30: SE ~0.4
    rare = by_point[(LOSS, 150, 0.5)]
    assert rare.events == 0 and rare.interval_kind == "clopper-pearson-pooled"


def test_servers_five_percent_slow_fail_the_validation(pool: ProcessPoolExecutor) -> None:
    points = [(LOSS, 15, 0.8), (DELAY, 15, 0.8), (LOSS, 150, 0.95)]
    wrong = validate_grid(points, MIN_REPLICATIONS, 2024, pool, service_rate=0.95, **SHORT)
    assert not wrong.passed
    assert len(wrong.family_misses) == len(points)
    assert all(v.estimate.low > v.exact for v in wrong.points)  # slower servers: more of both


def test_an_empty_start_without_warm_up_fails_where_the_stationary_start_holds(
    pool: ProcessPoolExecutor,
) -> None:
    """At load 0.95 (c = 5, relaxation time about 300 service times) a run of one relaxation time
    that starts empty and deletes nothing underestimates the wait; started in the stationary
    distribution, the same run holds. 100 replications of about 1,500 customers each."""
    short = {"episodes": 10, "customers": 100, "relaxations": 1, "min_episodes": 5}
    point = [(DELAY, 5, 0.95)]
    biased = validate_grid(point, 100, 7, pool, start=EMPTY, warmup=0.0, **short)
    assert not biased.passed and biased.points[0].simultaneous.high < biased.points[0].exact
    sound = validate_grid(point, 100, 7, pool, warmup=0.0, **short)
    assert sound.passed


def test_the_capacity_models_server_pool_holds_erlang_c(
    subset: GridResult, pool: ProcessPoolExecutor
) -> None:
    """`sim.service.ServerPool` on the subset's streams: the same waits as the reference queue."""
    point = (DELAY, 15, 0.8)
    served = validate_grid([point], MIN_REPLICATIONS, 2024, pool, server_pool=True, **SHORT)
    assert served.passed
    reference = next(v for v in subset.points if (v.model, v.c, v.load) == point)
    v = served.points[0]
    assert v.customers == reference.customers
    assert v.events == pytest.approx(reference.events, rel=1e-4)  # waits below rounding aside
    assert v.estimate.mean == pytest.approx(reference.estimate.mean, rel=1e-9)
    slow = {**SHORT, "episodes": 1_000}
    wrong = validate_grid(
        [point], MIN_REPLICATIONS, 2024, pool, service_rate=0.95, server_pool=True, **slow
    )
    assert not wrong.passed


def test_the_subset_tells_five_percent_more_load_apart(subset: GridResult) -> None:
    """The intervals are narrow enough to matter: the Erlang value at 5% more load is outside."""
    for v in subset.tested:
        more = 1.05 * v.load * v.c
        if v.model == LOSS:
            wrong = erlang_b(v.c, more)
        elif more < v.c:
            wrong = erlang_c(v.c, more) / (v.c - more)
        else:
            continue  # 5% more than 0.95 is unstable: infinitely far outside
        assert not v.estimate.contains(wrong), (v.model, v.c, v.load, v.estimate, wrong)


def test_the_stationary_start_draws_the_stationary_occupancy() -> None:
    gen = np.random.default_rng(5)
    c, load = 15, 0.9
    a = load * c
    draws = [stationary_occupancy(DELAY, c, load, gen) for _ in range(20_000)]
    mean_in_system = a + erlang_c(c, a) * load / (1 - load)  # L = a + Lq
    assert np.mean(draws) == pytest.approx(mean_in_system, rel=0.03)
    assert np.mean([n >= c for n in draws]) == pytest.approx(erlang_c(c, a), abs=0.015)
    loss = [stationary_occupancy(LOSS, c, load, gen) for _ in range(20_000)]
    assert max(loss) == c
    assert np.mean([n == c for n in loss]) == pytest.approx(erlang_b(c, a), abs=0.01)


def test_intervals_are_student_t_on_the_replication_estimates() -> None:
    reps = [Replication(1000, 80 + 3 * i, 0, 0.0) for i in range(30)]
    v = summarise(LOSS, 15, 0.8, reps, family_level=0.999)
    assert v.tested and v.exact == pytest.approx(erlang_b(15, 12.0))
    values = [r.blocking for r in reps]
    mean = sum(values) / 30
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / 29)
    assert v.estimate.mean == pytest.approx(mean)
    assert v.estimate.half_width == pytest.approx(sps.t.ppf(0.975, 29) * sd / math.sqrt(30))
    assert v.simultaneous.half_width == pytest.approx(sps.t.ppf(0.9995, 29) * sd / math.sqrt(30))
    # a model that never blocks where Erlang B says it must (B(5, 4) = 0.2) fails the verdict
    silent = summarise(LOSS, 5, 0.8, [Replication(2000, 0, 0, 0.0)] * 30)
    assert silent.tested and not silent.contains
    assert not GridResult([silent, v], 0.975).passed
    # a point too rare to resolve is reported with the pooled count, not tested
    rare = summarise(LOSS, 150, 0.5, [Replication(2000, 0, 0, 0.0)] * 30, tested=False)
    assert not rare.tested and rare.metric == "blocking (Erlang B)" and rare.estimate.low == 0
    assert not GridResult([rare], 0.95).passed  # nothing tested is no pass


def test_the_grid_is_the_issue_grid_and_its_level_is_bonferroni() -> None:
    points = grid_points()
    assert len(points) == 80
    assert {c for _, c, _ in points} == {5, 15, 50, 150}
    assert min(load for *_, load in points) == 0.5 and max(load for *_, load in points) == 0.95
    assert bonferroni_level(80) == pytest.approx(1 - 0.05 / 80)


def test_the_numbers_do_not_depend_on_the_executor(pool: ProcessPoolExecutor) -> None:
    points = [(LOSS, 5, 0.9), (DELAY, 5, 0.7)]
    tiny = {"episodes": 50, "customers": 500, "min_episodes": 10}
    serial = validate_grid(points, MIN_REPLICATIONS, 11, None, **tiny)
    parallel = validate_grid(points, MIN_REPLICATIONS, 11, pool, **tiny)
    assert serial == parallel


def test_run_lengths_are_sized_by_episodes() -> None:
    heavy = run_length(DELAY, 5, 0.95)
    assert heavy.warmup == pytest.approx(3 * relaxation_time(5, 0.95))
    assert expected_episodes(DELAY, 5, 0.95, heavy) == pytest.approx(5_000)
    assert heavy.horizon - heavy.warmup >= 50 * relaxation_time(5, 0.95)
    # rarer episodes, longer runs, up to the customer cap
    assert run_length(LOSS, 50, 0.8).horizon > run_length(LOSS, 50, 0.9).horizon
    capped = run_length(LOSS, 50, 0.7)  # 5,000 episodes would take about 1.05M customers
    assert (capped.horizon - capped.warmup) * 0.7 * 50 == pytest.approx(1_000_000)
    assert expected_episodes(LOSS, 50, 0.7, capped) >= 2_500
    # a point that cannot reach the minimum within the cap gets a short run and is not tested
    hopeless = run_length(DELAY, 150, 0.6)
    assert hopeless.horizon - hopeless.warmup == pytest.approx(20_000 / 90)
    assert episode_rate(LOSS, 5, 0.8) == pytest.approx(5 * erlang_b(5, 4.0))


def test_replications_are_reproducible_and_independent() -> None:
    length = run_length(LOSS, 5, 0.8, episodes=100)
    assert replicate(LOSS, 5, 0.8, 1, length) == replicate(LOSS, 5, 0.8, 1, length)
    assert replicate(LOSS, 5, 0.8, 1, length) != replicate(LOSS, 5, 0.8, 2, length)


def test_warm_up_customers_are_not_measured() -> None:
    length = run_length(DELAY, 5, 0.9, episodes=100)
    assert length.warmup > 10
    measured = replicate(DELAY, 5, 0.9, 3, length)
    expected = 0.9 * 5 * (length.horizon - length.warmup)
    assert measured.arrivals == pytest.approx(expected, rel=0.1)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replicate(DELAY, 5, 1.0, 1, run_length(LOSS, 5, 0.5))
    with pytest.raises(ValueError, match="start"):
        replicate(LOSS, 5, 0.5, 1, run_length(LOSS, 5, 0.5), start="full")
    with pytest.raises(ValueError, match="two replications"):
        validate_grid([(LOSS, 5, 0.5)], replications=1)


def test_validate_point_is_one_grid_point() -> None:
    tiny = {"episodes": 50, "customers": 500, "min_episodes": 10}
    v = validate_point(LOSS, 5, 0.9, seed=3, **tiny)
    assert v == validate_grid([(LOSS, 5, 0.9)], MIN_REPLICATIONS, 3, **tiny).points[0]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ROOMTRUST_SIM_FULL_GRID"),
    reason="the full grid takes minutes: `roomtrust sim validate` or ROOMTRUST_SIM_FULL_GRID=1",
)
def test_the_full_grid_holds_the_erlang_values() -> None:
    """The whole grid (c in {5, 15, 50, 150}, loads 0.50 to 0.95, Erlang B blocking and Erlang C
    mean wait), the run `roomtrust sim validate` makes, on two processes."""
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as executor:
        result = validate_grid(grid_points(), MIN_REPLICATIONS, seed=2024, executor=executor)
    assert result.passed, [(v.model, v.c, v.load) for v in result.family_misses]
    print(f"full grid: {time.perf_counter() - started:.0f} s, {len(result.misses)} 95% misses")
