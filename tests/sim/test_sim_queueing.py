"""The SimPy M/M/c/c and M/M/c models against Erlang B and Erlang C.

Each point runs 10 independent replications (own SeedSequence streams), deletes a warm-up and
forms a 95% t interval. This test covers every c in {5, 15, 50, 150} with representative loads
between 50% and 95% (the points below); `roomtrust sim validate` runs the whole grid of loads
0.50, 0.55, ..., 0.95 for both models. Where the exact value is too small for the run to see a
single event (c = 150 at 50%), the interval is the exact binomial one on the pooled count (of
blocked calls; of waiting customers for Erlang C's P(wait), since no wait was seen to average).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from sim.queueing import DELAY, LOSS, replicate, run_length, validate_point

POINTS = [
    (LOSS, 5, 0.5),
    (LOSS, 5, 0.95),
    (LOSS, 15, 0.8),
    (LOSS, 50, 0.95),
    (LOSS, 150, 0.5),
    (LOSS, 150, 0.95),
    (DELAY, 5, 0.8),
    (DELAY, 15, 0.65),
    (DELAY, 50, 0.8),
    (DELAY, 150, 0.5),
    (DELAY, 150, 0.95),
]


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(2) as executor:
        yield executor


@pytest.mark.parametrize(("model", "c", "load"), POINTS)
def test_the_confidence_interval_contains_the_erlang_value(
    pool: ProcessPoolExecutor, model: str, c: int, load: float
) -> None:
    v = validate_point(model, c, load, replications=10, customers=8000, executor=pool, stretch=5)
    assert v.contains, (v.exact, v.estimate, v.wait_probability)
    if v.exact * v.customers < 1:  # not resolvable: the run must not have seen it either
        assert v.estimate.mean == 0 and v.estimate.high < 2e-5
    else:  # the interval must be tight enough to mean something
        assert v.estimate.half_width < 0.5 * v.exact, (v.exact, v.estimate)


def test_replications_are_reproducible_and_independent() -> None:
    length = run_length(LOSS, 5, 0.8, customers=2000)
    assert replicate(LOSS, 5, 0.8, 1, length) == replicate(LOSS, 5, 0.8, 1, length)
    assert replicate(LOSS, 5, 0.8, 1, length) != replicate(LOSS, 5, 0.8, 2, length)


def test_warm_up_excludes_the_empty_start() -> None:
    length = run_length(DELAY, 5, 0.9, customers=2000)
    assert length.warmup > 10
    measured = replicate(DELAY, 5, 0.9, 3, length)
    assert 0 < measured.arrivals < 0.9 * 5 * length.horizon


def test_an_unstable_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replicate(DELAY, 5, 1.0, 1, run_length(LOSS, 5, 0.5))
