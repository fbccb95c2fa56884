"""Fleet operations in the simulator: the real agent of every device applies a pushed profile
and renews its certificate by itself when fewer than `renew_before_days` are left."""

from __future__ import annotations

from typing import Any

import pytest

from devices_virtual.scenario import ScenarioError
from sim.operations import run_operations

FLEETS = [
    {
        "name": "us-rooms",
        "dm_region": "us",
        "sites": [{"name": "New York", "time_zone": "America/New_York", "location": "us-east"}],
        "models": {"MeetingBar A20": 12, "DeskVision A24": 8},
    }
]


def test_every_device_applies_the_push_and_renews_a_day_on(small_scenario: Any) -> None:
    result = run_operations(small_scenario("sim-fleet-operations", fleets=FLEETS))
    m = result.metrics
    assert m["devices"] == m["config_acknowledged"] == m["config_applied"] == 20
    assert m["config_refused"] == 0 and m["config_ack_p95_s"] < 5
    assert m["renewed"] == 20 and m["all_renewed"]
    # enrolled within 5 minutes with 31 days left: each renews 24 h later (30 days left)
    assert 24.0 <= m["renewal_wave_start_h"] <= m["renewal_wave_end_h"] < 24.2


def test_without_time_for_the_wave_nobody_renews_and_a_refused_key_is_counted(
    small_scenario: Any,
) -> None:
    result = run_operations(
        small_scenario(
            "sim-fleet-operations",
            fleets=FLEETS,
            **{"sim.hours": 6, "sim.profile": {"ntp.server": "Not A Host!"}},
        )
    )
    m = result.metrics
    assert m["renewed"] == 0 and not m["all_renewed"]
    assert m["config_applied"] == 0 and m["config_refused"] == 20


def test_a_renewal_window_as_long_as_the_certificate_is_refused(small_scenario: Any) -> None:
    with pytest.raises(ScenarioError, match="renew_before_days"):
        small_scenario("sim-fleet-operations", **{"sim.renew_before_days": 31})
