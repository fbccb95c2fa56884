"""The rollout model runs the DM service's planner and reproduces what the planner's unit tests
specify: wave boundaries, and the pause at the error threshold without a device leaving its
version (tests/dm/test_rollout_planner.py)."""

from __future__ import annotations

from typing import Any

from sim.rollout import run_rollout


def _fleet(count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "rooms",
            "dm_region": "us",
            "sites": [{"name": "HQ", "time_zone": "UTC", "location": "us-east"}],
            "models": {"MeetingBar A20": count},
        }
    ]


def test_wave_boundaries_by_count_and_percentage(small_scenario: Any) -> None:
    scenario = small_scenario(
        "sim-staged-rollout",
        fleets=_fleet(10),
        **{
            "sim.waves": [{"count": 2}, {"percent": 30}, {"percent": 10}],
            "sim.windows": [],
            "sim.failure_rate": 0.0,
            "sim.error_threshold": {"count": 1},
            "sim.success_percent": 100,
        },
    )
    result = run_rollout(scenario)
    assert result.metrics["wave_sizes"] == [2, 3, 5]
    assert [w["size"] for w in result.series["waves"]] == [2, 3, 5]
    assert result.metrics["state"] == "completed" and result.metrics["updated"] == 10
    starts = [w["start_s"] for w in result.series["waves"]]
    assert starts == sorted(starts) and starts[0] == 0 < starts[1]


def test_a_bad_image_pauses_the_first_wave_and_no_device_leaves_its_version(
    small_scenario: Any,
) -> None:
    scenario = small_scenario(
        "sim-staged-rollout",
        fleets=_fleet(300),
        **{
            "sim.waves": [{"percent": 10}, {"percent": 100}],
            "sim.error_threshold": {"percent": 50},
            "sim.failure_rate": 1.0,
            "sim.windows": [],
            "sim.download_cap": None,
        },
    )
    result = run_rollout(scenario)
    m = result.metrics
    assert m["state"] == "paused"
    assert m["updated"] == 0
    assert m["wave_sizes"] == [30, 270]
    assert m["waiting"] == 270
    assert "wave 1 reached its error threshold" in m["pause_reason"]


def test_maintenance_windows_hold_updates_until_they_open(small_scenario: Any) -> None:
    scenario = small_scenario(
        "sim-staged-rollout",
        fleets=_fleet(20),
        **{
            "sim.waves": [{"percent": 100}],
            "sim.windows": [{"start": "02:00", "end": "04:00"}],
            "sim.failure_rate": 0.0,
            "sim.start": "2025-01-15T12:00:00Z",
        },
    )
    result = run_rollout(scenario)
    assert result.metrics["completed"]
    first_progress = next(r["t_s"] for r in result.series["states"] if r["in_progress"] > 0)
    assert first_progress >= 14 * 3600  # 02:00 next day is 14 h after noon
