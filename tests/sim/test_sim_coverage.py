"""Coverage of the validation's intervals: a working method holds the exact value in about 95% of
independent sets, a wrong model in almost none."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from sim.coverage import interval_coverage
from sim.queueing import LOSS
from sim.validation import DIRECT, IMPORTANCE

QUICK = {"hits": 300, "episodes": 300, "customers": 2_000, "max_customers": 50_000}


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as executor:
        yield executor


def test_sampled_intervals_hold_the_exact_value_about_95_percent_of_the_time(
    pool: ProcessPoolExecutor,
) -> None:
    found = interval_coverage(LOSS, 50, 0.6, 20, seed=5, executor=pool, method=IMPORTANCE, **QUICK)
    assert found.method == IMPORTANCE and found.sets == 20 and found.replications == 30
    assert found.held >= 17 and found.p_value > 0.01  # P(<= 16 of 20 | 95%) = 0.016
    assert len(set(found.relative_errors)) == 20  # independent streams per set
    assert abs(found.mean_relative_error) < 3 * found.standard_error + 0.01


def test_direct_intervals_hold_the_exact_value_about_95_percent_of_the_time(
    pool: ProcessPoolExecutor,
) -> None:
    found = interval_coverage(LOSS, 5, 0.8, 20, seed=5, executor=pool, min_episodes=100, **QUICK)
    assert found.method == DIRECT and found.held >= 17 and found.p_value > 0.01


def test_a_wrong_model_is_held_by_almost_no_interval(pool: ProcessPoolExecutor) -> None:
    slow = interval_coverage(
        LOSS, 50, 0.6, 10, 30, 5, pool, service_rate=0.95, method=IMPORTANCE, **QUICK
    )
    assert slow.method == IMPORTANCE and slow.held <= 1 and slow.p_value < 1e-6
    assert slow.mean_relative_error > 0.2  # 5% slower servers: far more blocking


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="two sets"):
        interval_coverage(LOSS, 5, 0.5, 1)
    with pytest.raises(ValueError, match="model"):
        interval_coverage("mm1", 5, 0.5, 2)
