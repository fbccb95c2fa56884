"""The importance-sampled regenerative replications of `sim.rare`, piece by piece.

Their verdict against Erlang B and C, next to the direct runs, is in `test_sim_validation.py`.
"""

from __future__ import annotations

import pytest

from sim.erlang import erlang_b, erlang_c
from sim.queueing import DELAY, EMPTY, LOSS
from sim.rare import regeneration_state, replicate


def test_the_changed_measure_makes_all_busy_frequent_and_the_likelihood_ratio_undoes_it() -> None:
    """At c = 150, load 0.5 about one cycle in 20 reaches all-busy under the exchanged jumps,
    against ~1e-13 for the true process; the simulated (unweighted) blocked fraction is some
    10^12 times Erlang B, the weighted one lies near it."""
    r = replicate(LOSS, 150, 0.5, 1, hits=500)
    exact = erlang_b(150, 75.0)
    assert r.hits == 500 and 0.01 < r.hits / r.cycles < 0.2
    assert r.events / r.customers > 1e9 * exact
    assert r.blocking == pytest.approx(exact, rel=0.5)


def test_without_an_exchanged_state_it_is_a_plain_regenerative_simulation() -> None:
    """At c = 5, load 0.9, n0 = 4 and no state lies between n0 and c: every weight is 1, so the
    weighted sums are the simulated counts, and the waiting fraction is Erlang C."""
    r = replicate(DELAY, 5, 0.9, 2, hits=5_000)
    assert regeneration_state(5, 4.5, 1.0) == 4
    assert r.arrivals == r.customers and r.blocked == 0
    assert r.events / r.customers == pytest.approx(erlang_c(5, 4.5), abs=0.02)
    loss = replicate(LOSS, 5, 0.9, 2, hits=5_000)
    assert loss.arrivals == loss.customers and loss.blocked == loss.events


def test_the_regeneration_state_is_the_most_likely_occupancy_below_c() -> None:
    assert regeneration_state(150, 75.0, 1.0) == 75
    assert regeneration_state(5, 4.75, 1.0) == 4
    assert regeneration_state(5, 5.5, 1.0) == 4  # an overloaded loss system: kept below c
    assert regeneration_state(15, 12.0, 0.95) == 12


def test_the_part_before_the_first_regeneration_is_deleted_as_warm_up() -> None:
    """Started empty at c = 150, load 0.5, the climb to n0 = 75 takes at least 75 arrivals, none
    of them measured; the estimate still holds Erlang B (within a generous tolerance)."""
    empty = replicate(LOSS, 150, 0.5, 3, hits=500, start=EMPTY)
    assert empty.warmup_customers >= 75
    stationary = replicate(LOSS, 150, 0.5, 3, hits=500)
    assert stationary.warmup_customers < empty.warmup_customers
    assert empty.blocking == pytest.approx(erlang_b(150, 75.0), rel=0.5)


def test_waits_are_simulated_times() -> None:
    """The delay queue's waits come from the simulated clock: a mean wait per waiting customer of
    about 1 / (c mu - lambda), as an M/M/c queue gives."""
    r = replicate(DELAY, 5, 0.9, 4, hits=20_000)  # sd of either ratio ~5% (12 seeds)
    assert r.wait_sum / r.events == pytest.approx(1 / (5 - 4.5), rel=0.15)
    assert r.mean_wait == pytest.approx(erlang_c(5, 4.5) / 0.5, rel=0.15)


def test_replications_are_reproducible_and_independent() -> None:
    assert replicate(DELAY, 50, 0.6, 5, hits=100) == replicate(DELAY, 50, 0.6, 5, hits=100)
    assert replicate(DELAY, 50, 0.6, 5, hits=100) != replicate(DELAY, 50, 0.6, 6, hits=100)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replicate(DELAY, 5, 1.0, 1)  # unstable: cycles would never end
    with pytest.raises(ValueError, match="outside"):
        replicate(DELAY, 5, 0.97, 1, service_rate=0.95)
    with pytest.raises(ValueError, match="outside"):
        replicate(LOSS, 5, 0.0, 1)
    with pytest.raises(ValueError, match="hits"):
        replicate(LOSS, 5, 0.5, 1, hits=0)
    with pytest.raises(ValueError, match="start"):
        replicate(LOSS, 5, 0.5, 1, start="full")
    with pytest.raises(ValueError, match="model"):
        replicate("mm1", 5, 0.5, 1)
