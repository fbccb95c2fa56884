"""The enrollment storm (real DeviceAgent), call load, failover, retention and the cohort."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from devices_virtual.scenario import ScenarioError
from services.meeting.domain.placement import place
from sim.calls import run_calls
from sim.cohort import Cohort
from sim.enrollment import run_enrollment
from sim.latency import latency_matrix
from sim.retention import run_retention
from sim.scenario import parse_sim_scenario, read_data, with_overrides
from sim.service import ServerPool


def test_enrollment_storm_enrolls_every_deployed_device(small_scenario: Any) -> None:
    fleets = read_data("scenarios/sim-enrollment-storm.yaml")["fleets"]
    fleets[0]["models"] = {"MeetingBar A20": 300, "MeetingBoard 65": 100}
    fleets[0]["undeployed"] = 5
    fast = small_scenario("sim-enrollment-storm", fleets=fleets, **{"sim.replicas": {"eu": 1}})
    slow = small_scenario(
        "sim-enrollment-storm",
        fleets=fleets,
        **{"sim.replicas": {"eu": 1}, "sim.services": {"enroll": {"servers": 1, "mean_s": 2.0}}},
    )
    a, b = run_enrollment(fast), run_enrollment(slow)
    assert a.metrics["enrolled"] == 400 and a.metrics["refused_undeployed"] == 5
    assert a.metrics["all_enrolled"]
    # the model boot time (45-90 s) plus the preconfigured-domain sequence come first
    assert a.metrics["enroll_p50_s"] > 45
    # a slower enroll endpoint on one replica makes a queue and a longer storm
    assert b.metrics["max_queue_eu"] > a.metrics["max_queue_eu"]
    assert b.metrics["time_to_all_enrolled_s"] > a.metrics["time_to_all_enrolled_s"]


def test_call_load_places_with_the_real_function_and_blocks_with_few_relays(
    small_scenario: Any,
) -> None:
    many = run_calls(small_scenario("sim-call-load", **{"sim.hours": 8}))
    few = run_calls(small_scenario("sim-call-load", **{"sim.hours": 8, "sim.relays.asia": 2}))
    matrix = latency_matrix()
    assert many.series["placements"]
    for p in many.series["placements"]:
        means = {
            r: np.mean([matrix[loc][r] for loc in p["locations"]])
            for r in ("na", "eu", "asia", "sa")
        }
        assert means[p["region"]] == min(means.values())
    assert few.metrics["blocking_asia"] > many.metrics["blocking_asia"]
    assert 0 < many.metrics["utilisation_asia"] < 1


def test_failover_moves_calls_and_replaces_the_relay(small_scenario: Any) -> None:
    result = run_calls(small_scenario("sim-failover", **{"sim.hours": 14}))
    m = result.metrics
    assert m["relay_failures"] == 2 and m["replacements"] == 2
    assert m["moved_calls"] > 0
    assert m["dropped_calls"] == 0
    assert m["max_replacement_s"] < 15 * 60


def test_failover_without_headroom_drops_calls(small_scenario: Any) -> None:
    tight = small_scenario(
        "sim-failover",
        **{"sim.hours": 14, "sim.relays": {"na": 5, "sa": 1, "eu": 5, "asia": 2}},
    )
    assert run_calls(tight).metrics["dropped_calls"] > 0


def test_retention_levels_off_after_the_retention_period(small_scenario: Any) -> None:
    result = run_retention(small_scenario("sim-retention-volume", **{"sim.growth_per_day": 0.0}))
    rows = [r["rows_telemetry"] for r in result.series["volume"]]
    assert result.metrics["telemetry_rows_per_device_day"] == pytest.approx(96, rel=0.01)
    assert rows[100] < rows[179] and rows[250] == pytest.approx(rows[350], rel=0.01)


def test_cohort_reports_every_device_at_its_interval() -> None:
    env = simpy.Environment()
    cohort = Cohort(env, 1000, 60.0, 600.0, np.random.default_rng(1))
    env.run(until=3600)
    assert cohort.heartbeats.sum() == pytest.approx(60_000, rel=0.02)
    assert cohort.reports.sum() == pytest.approx(6_000, rel=0.03)
    assert cohort.heartbeats.min() >= 58
    assert cohort.memory_bytes() < 100 * 1000


def test_server_pool_queues_beyond_its_servers() -> None:
    env = simpy.Environment()
    pool = ServerPool(env, "dm", 2)
    done = [pool.submit(1.0) for _ in range(5)]
    env.run()
    assert all(d.triggered for d in done)
    assert pool.max_queue == 3 and env.now == 3.0


def test_placement_matches_the_meeting_service() -> None:
    assert (
        place(["singapore", "japan"], latency_matrix(), ["na", "sa", "eu", "asia"]).region == "asia"
    )


def test_a_bad_sim_section_names_the_field() -> None:
    data = read_data("scenarios/sim-call-load.yaml")
    with pytest.raises(ScenarioError) as info:
        parse_sim_scenario(with_overrides(data, {"sim.relays": {"mars": 3}}))
    assert info.value.field == "sim.call_load.relays"
    with pytest.raises(ScenarioError) as info:
        parse_sim_scenario(with_overrides(data, {"sim.kind": "nonsense"}))
    assert info.value.field == "sim"
