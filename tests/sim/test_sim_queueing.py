"""The SimPy M/M/c/c and M/M/c queues: start state, run lengths, warm-up, reproducibility.

Their validation against Erlang B and C is in `test_sim_validation.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.erlang import erlang_b, erlang_c
from sim.queueing import (
    DELAY,
    LOSS,
    MIN_EPISODES,
    BlockDraws,
    ExpDraws,
    episode_rate,
    expected_episodes,
    relaxation_time,
    replicate,
    replicate_server_pool,
    run_length,
    stationary_occupancy,
)


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


def test_run_lengths_are_sized_by_episodes() -> None:
    heavy = run_length(DELAY, 5, 0.95)
    assert heavy.warmup == pytest.approx(3 * relaxation_time(5, 0.95))
    assert expected_episodes(DELAY, 5, 0.95, heavy) == pytest.approx(5_000)
    assert heavy.horizon - heavy.warmup >= 50 * relaxation_time(5, 0.95)
    # rarer episodes, longer runs, up to the customer cap
    assert run_length(LOSS, 50, 0.8).horizon > run_length(LOSS, 50, 0.9).horizon
    capped = run_length(LOSS, 50, 0.7)  # 5,000 episodes would take about 1.05M customers
    assert (capped.horizon - capped.warmup) * 0.7 * 50 == pytest.approx(1_000_000)
    assert expected_episodes(LOSS, 50, 0.7, capped) >= MIN_EPISODES
    # beyond the cap a direct run cannot expect enough episodes (sim.validation then samples)
    hopeless = run_length(DELAY, 150, 0.6)
    assert (hopeless.horizon - hopeless.warmup) * 0.6 * 150 == pytest.approx(1_000_000)
    assert expected_episodes(DELAY, 150, 0.6, hopeless) < 1
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
    assert measured.customers == measured.arrivals and measured.events == measured.waited


def test_the_server_pool_queue_waits_as_the_reference_queue_does() -> None:
    """Same streams, same customers: `sim.service.ServerPool` and the FIFO queue of this module
    give the same waits (to rounding)."""
    length = run_length(DELAY, 15, 0.8, episodes=200)
    reference = replicate(DELAY, 15, 0.8, 9, length)
    pool = replicate_server_pool(15, 0.8, 9, length)
    assert pool.arrivals == reference.arrivals and reference.waited > 100
    assert pool.waited == pytest.approx(reference.waited, rel=1e-3)
    assert pool.mean_wait == pytest.approx(reference.mean_wait, rel=1e-9)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        replicate(DELAY, 5, 1.0, 1, run_length(LOSS, 5, 0.5))
    with pytest.raises(ValueError, match="start"):
        replicate(LOSS, 5, 0.5, 1, run_length(LOSS, 5, 0.5), start="full")
    with pytest.raises(ValueError, match="model"):
        replicate("mm1", 5, 0.5, 1, run_length(LOSS, 5, 0.5))


def test_block_draws_give_the_generator_s_variates_one_at_a_time() -> None:
    exponential = ExpDraws(np.random.default_rng(1), 2.0, block=4)
    drawn = [exponential() for _ in range(10)]  # in blocks of 4, in the generator's order
    assert drawn == pytest.approx(np.random.default_rng(1).exponential(2.0, 12)[:10].tolist())
    uniform = BlockDraws(np.random.default_rng(1).random, block=4)
    values = [uniform() for _ in range(8)]
    assert values[:4] == np.random.default_rng(1).random(4).tolist()[::-1]
    assert len(set(values)) == 8 and all(0 <= v < 1 for v in values)
