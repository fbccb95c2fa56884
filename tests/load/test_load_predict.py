"""The simulator's run of a Locust load: the real DeviceAgent's requests through c servers, with
the users, pace and phasing of the Locust run, checked against what queueing theory says."""

from __future__ import annotations

import pytest

from load.predict import LoadShape, simulate_load
from sim.service import ServiceTime

S = 0.010


def _times(kind: str = "telemetry") -> dict[str, ServiceTime]:
    return {
        purpose: ServiceTime(servers=1, distribution="deterministic", mean_s=S)
        for purpose in ("enroll", "heartbeat", "telemetry")
    }


def test_one_user_back_to_back_is_one_service_time_per_request() -> None:
    shape = LoadShape("telemetry", users=1, rate_per_user=None, spawn_rate=10, window_s=5)
    (figures,) = simulate_load(shape, _times(), servers=1).values()
    assert figures.p50_ms == pytest.approx(S * 1000)
    assert figures.throughput == pytest.approx(1 / S, rel=0.01)


def test_closed_loop_beyond_the_servers_queues() -> None:
    """4 users back to back on 2 servers: each request waits one service time (FIFO)."""
    shape = LoadShape("heartbeat", users=4, rate_per_user=None, spawn_rate=1000, window_s=5)
    figures = simulate_load(shape, _times(), servers=2)["heartbeat"]
    assert figures.throughput == pytest.approx(2 / S, rel=0.01)
    assert figures.p50_ms == pytest.approx(2 * S * 1000, rel=0.01)


def test_open_load_is_not_capped_by_latency_below_capacity() -> None:
    shape = LoadShape("telemetry", users=5, rate_per_user=4.0, spawn_rate=20, window_s=10)
    figures = simulate_load(shape, _times(), servers=1)["telemetry"]
    assert figures.throughput == pytest.approx(20.0, rel=0.02)
    assert figures.p50_ms == pytest.approx(S * 1000)  # evenly phased: nobody waits


def test_enrollment_runs_the_agents_whole_episode() -> None:
    shape = LoadShape("enroll", users=1, rate_per_user=None, spawn_rate=10, window_s=3)
    figures = simulate_load(shape, _times(), servers=1)
    assert set(figures) == {"enroll", "heartbeat", "telemetry"}
    assert figures["enroll"].requests == pytest.approx(figures["telemetry"].requests, abs=1)
    assert figures["enroll"].throughput == pytest.approx(1 / (3 * S), rel=0.02)
