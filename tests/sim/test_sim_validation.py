"""The queues against Erlang B and Erlang C: a representative subset of the grid, and the
verdict's negative tests.

The subset runs in every `make test` with fixed seeds: c = 5 (both models, light and heavy load),
c = 15, and c = 150 at a high (0.95) and a moderate (0.85) load, run directly in SimPy; and four
points whose blocking or waiting is too rare for a direct run (down to Erlang B = 8.5e-15 at
c = 150, load 0.5), run with importance sampling. 30 independent replications each, stationary
start, warm-up deleted, Student-t intervals, the family-wise (Bonferroni) verdict of the full grid.
The direct runs are shorter than `roomtrust sim validate` makes (3,000 all-busy episodes per
replication instead of 5,000, at most 120,000 customers, so c = 150 at load 0.85 sees about 700)
and the sampled ones run to 1,000 all-busy cycles instead of 2,000, which widens the intervals.
The same validation must fail on deliberately wrong models: servers 5% slower than stated, an
empty start without warm-up at load 0.95, and a direct run of a point too rare for it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from scipy import stats as sps

from sim.erlang import erlang_b, erlang_c
from sim.queueing import DELAY, EMPTY, LOSS, Replication
from sim.rare import WeightedReplication
from sim.validation import (
    DIRECT,
    IMPORTANCE,
    MIN_REPLICATIONS,
    GridResult,
    bonferroni_level,
    grid_points,
    plan_point,
    summarise,
    validate_grid,
    validate_point,
)

SUBSET = {
    (LOSS, 5, 0.5): DIRECT,
    (LOSS, 15, 0.8): DIRECT,
    (LOSS, 150, 0.95): DIRECT,
    (LOSS, 150, 0.85): DIRECT,
    (LOSS, 150, 0.5): IMPORTANCE,  # Erlang B 8.5e-15
    (LOSS, 50, 0.6): IMPORTANCE,  # Erlang B 3.4e-4, episodes cluster
    (DELAY, 5, 0.5): DIRECT,
    (DELAY, 5, 0.95): DIRECT,
    (DELAY, 15, 0.8): DIRECT,
    (DELAY, 150, 0.95): DIRECT,
    (DELAY, 150, 0.85): DIRECT,
    (DELAY, 150, 0.5): IMPORTANCE,  # mean wait 2.3e-16 service times
    (DELAY, 150, 0.7): IMPORTANCE,
}
SHORT = {"episodes": 3_000, "min_episodes": 500, "max_customers": 120_000, "hits": 1_000}


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def subset(pool: ProcessPoolExecutor) -> GridResult:
    return validate_grid(list(SUBSET), MIN_REPLICATIONS, seed=2024, executor=pool, **SHORT)


def test_a_representative_subset_holds_the_erlang_values(subset: GridResult) -> None:
    assert subset.family_level == pytest.approx(1 - 0.05 / len(SUBSET))
    missed = [(v.model, v.c, v.load, v.exact, v.simultaneous) for v in subset.family_misses]
    assert subset.passed, missed
    assert len(subset.misses) <= 2  # per-point 95%: chance alone misses about 0.65 of 13
    for v in subset.points:
        point = (v.model, v.c, v.load)
        assert v.method == SUBSET[point], point
        assert v.replications == MIN_REPLICATIONS
        assert v.relative_half_width < 0.25, (point, v.estimate)
        assert abs(v.skewness) < 2.0, (point, v.skewness)  # sample skewness of 30: SE ~0.4
        assert v.events > 0 and v.estimate.low > 0, point
    rarest = next(v for v in subset.points if (v.model, v.c, v.load) == (LOSS, 150, 0.5))
    assert rarest.exact < 1e-14 and rarest.relative_half_width < 0.1


def test_the_subset_tells_five_percent_more_load_apart(subset: GridResult) -> None:
    """The intervals are narrow enough to matter: the Erlang value at 5% more load is outside."""
    for v in subset.points:
        more = 1.05 * v.load * v.c
        if v.model == LOSS:
            wrong = erlang_b(v.c, more)
        elif more < v.c:
            wrong = erlang_c(v.c, more) / (v.c - more)
        else:
            continue  # 5% more than 0.95 is unstable: infinitely far outside
        assert not v.estimate.contains(wrong), (v.model, v.c, v.load, v.estimate, wrong)


def test_servers_five_percent_slow_fail_the_validation(pool: ProcessPoolExecutor) -> None:
    points = [
        (LOSS, 15, 0.8),
        (DELAY, 15, 0.8),
        (LOSS, 150, 0.95),
        (LOSS, 150, 0.5),
        (DELAY, 150, 0.6),
    ]
    wrong = validate_grid(points, MIN_REPLICATIONS, 2024, pool, service_rate=0.95, **SHORT)
    assert [v.method for v in wrong.points] == [DIRECT] * 3 + [IMPORTANCE] * 2
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


def test_a_direct_run_of_a_point_too_rare_for_it_fails(pool: ProcessPoolExecutor) -> None:
    """What the importance sampling is for: run directly, c = 150 at load 0.5 blocks nobody (one
    blocked customer per ~10^14), and the collapsed interval misses Erlang B."""
    direct = validate_grid(
        [(LOSS, 150, 0.5)], MIN_REPLICATIONS, 2024, pool, method=DIRECT, max_customers=20_000
    )
    v = direct.points[0]
    assert v.method == DIRECT and v.events == 0 and v.estimate.high == 0
    assert not direct.passed


def test_importance_sampling_agrees_with_the_direct_runs_where_both_can_run(
    subset: GridResult, pool: ProcessPoolExecutor
) -> None:
    """A cross-check of the two methods on points the direct runs resolve."""
    points = [(LOSS, 15, 0.8), (DELAY, 15, 0.8), (DELAY, 150, 0.85)]
    sampled = validate_grid(
        points, MIN_REPLICATIONS, 2024, pool, method=IMPORTANCE, hits=SHORT["hits"]
    )
    assert sampled.passed and {v.method for v in sampled.points} == {IMPORTANCE}
    direct = {(v.model, v.c, v.load): v for v in subset.points}
    for v in sampled.points:
        d = direct[(v.model, v.c, v.load)]
        gap = abs(v.estimate.mean - d.estimate.mean)
        assert gap < 3 * math.hypot(v.estimate.half_width, d.estimate.half_width) / 1.96


def test_the_capacity_models_server_pool_holds_erlang_c(pool: ProcessPoolExecutor) -> None:
    """`sim.service.ServerPool` validated at c = 15, load 0.8, and failed with slow servers."""
    point = [(DELAY, 15, 0.8)]
    served = validate_grid(point, MIN_REPLICATIONS, 2024, pool, server_pool=True, **SHORT)
    assert served.passed and served.points[0].method == DIRECT
    slow = {**SHORT, "episodes": 1_000}
    wrong = validate_grid(
        point, MIN_REPLICATIONS, 2024, pool, service_rate=0.95, server_pool=True, **slow
    )
    assert not wrong.passed


def test_the_issue_grid_splits_into_direct_and_sampled_points() -> None:
    points = grid_points()
    assert len(points) == 80
    assert {c for _, c, _ in points} == {5, 15, 50, 150}
    assert min(load for *_, load in points) == 0.5 and max(load for *_, load in points) == 0.95
    assert bonferroni_level(80) == pytest.approx(1 - 0.05 / 80)
    sampled = {p for p in points if plan_point(*p).method == IMPORTANCE}
    assert len(sampled) == 22
    assert sampled == {
        (model, c, load)
        for model in (LOSS, DELAY)
        for c, top in ((150, 0.8), (50, 0.65))
        for load in points_up_to(top)
    }
    assert plan_point(LOSS, 5, 0.5, method=IMPORTANCE).method == IMPORTANCE
    assert plan_point(LOSS, 150, 0.5, method=DIRECT).method == DIRECT
    with pytest.raises(ValueError, match="method"):
        plan_point(LOSS, 5, 0.5, method="guess")


def points_up_to(top: float) -> list[float]:
    return [x for x in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8) if x <= top + 1e-9]


def test_intervals_are_student_t_on_the_replication_estimates() -> None:
    reps = [Replication(1000, 80 + 3 * i, 0, 0.0) for i in range(30)]
    v = summarise(LOSS, 15, 0.8, reps, family_level=0.999)
    assert v.exact == pytest.approx(erlang_b(15, 12.0))
    values = [r.blocking for r in reps]
    mean = sum(values) / 30
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / 29)
    assert v.estimate.mean == pytest.approx(mean)
    assert v.estimate.half_width == pytest.approx(sps.t.ppf(0.975, 29) * sd / math.sqrt(30))
    assert v.simultaneous.half_width == pytest.approx(sps.t.ppf(0.9995, 29) * sd / math.sqrt(30))
    # a model that never blocks where Erlang B says it must (B(5, 4) = 0.2) fails the verdict
    silent = summarise(LOSS, 5, 0.8, [Replication(2000, 0, 0, 0.0)] * 30)
    assert not silent.contains
    assert not GridResult([silent, v], 0.975).passed
    assert not GridResult([], 0.95).passed  # nothing checked is no pass
    # weighted replications: the ratio of the weighted sums pooled over the replications
    weighted = [
        WeightedReplication(10, 2, 0, 500, 40, 4.0 + i, (1 + i % 3) * 1e-14, 0.0) for i in range(30)
    ]
    w = summarise(LOSS, 150, 0.5, weighted, family_level=0.999, method=IMPORTANCE)
    blocked = sum((1 + i % 3) * 1e-14 for i in range(30))
    assert w.estimate.mean == pytest.approx(blocked / sum(4.0 + i for i in range(30)))
    assert w.customers == 30 * 500 and w.events == 30 * 40 and w.method == IMPORTANCE
    assert w.simultaneous.half_width > w.estimate.half_width > 0
    with pytest.raises(ValueError, match="weighted"):
        summarise(LOSS, 150, 0.5, reps, method=IMPORTANCE)


def test_the_numbers_do_not_depend_on_the_executor(pool: ProcessPoolExecutor) -> None:
    points = [(LOSS, 5, 0.9), (DELAY, 5, 0.7), (LOSS, 50, 0.5)]
    tiny = {"episodes": 50, "customers": 500, "min_episodes": 10, "hits": 50}
    serial = validate_grid(points, MIN_REPLICATIONS, 11, None, **tiny)
    parallel = validate_grid(points, MIN_REPLICATIONS, 11, pool, **tiny)
    assert serial.points[2].method == IMPORTANCE
    assert serial == parallel


def test_validate_point_is_one_grid_point() -> None:
    tiny = {"episodes": 50, "customers": 500, "min_episodes": 10}
    v = validate_point(LOSS, 5, 0.9, seed=3, **tiny)
    assert v == validate_grid([(LOSS, 5, 0.9)], MIN_REPLICATIONS, 3, **tiny).points[0]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="two replications"):
        validate_grid([(LOSS, 5, 0.5)], replications=1)


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
    assert len(result.points) == 80
    assert result.passed, [(v.model, v.c, v.load) for v in result.family_misses]
    print(f"full grid: {time.perf_counter() - started:.0f} s, {len(result.misses)} 95% misses")
