"""Load scenarios: the fleet schema plus a `load` section, strict, with the user counts that the
set-up step provisions for."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from devices_virtual.scenario import ScenarioError
from load.scenario import load_load_scenario, parse_load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "name": "t",
    "fleets": [
        {
            "name": "hq",
            "dm_region": "us",
            "sites": [{"name": "HQ"}],
            "models": {"MeetingBar A20": 2},
        }
    ],
    "phases": [{"kind": "deploy"}],
    "load": {
        "users": 10,
        "classes": {
            "device": {"weight": 3, "constant_throughput": 2.0},
            "admin": {"weight": 1},
            "undeployed": {"fixed_count": 2},
        },
    },
}


def _with(**load: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["load"].update(load)
    return data


def test_shipped_smoke_scenario_parses() -> None:
    scenario = load_load_scenario(ROOT / "scenarios" / "load-smoke.yaml")
    assert scenario.locust_classes() == [
        "DmDevice",
        "UndeployedDmDevice",
        "DmAdministrator",
        "MeetingParticipant",
        "MeetingModerator",
    ]
    assert scenario.load.classes["device"].constant_throughput == 2.0


def test_expected_users_take_fixed_counts_first_and_round_weights_up() -> None:
    scenario = parse_load_scenario(BASE)
    assert scenario.expected_users() == {"undeployed": 2, "device": 6, "admin": 2}
    assert scenario.expected_users(102) == {"undeployed": 2, "device": 75, "admin": 25}


@pytest.mark.parametrize(
    ("load", "field", "reason"),
    [
        ({"classes": {"device": {"weight": 1, "fixed_count": 1}}}, "load", "either weight"),
        ({"classes": {"device": {}}}, "load", "either weight"),
        ({"classes": {"robot": {"weight": 1}}}, "load.classes.robot", "'device'"),
        ({"classes": {"device": {"weight": 1, "tasks": {"reboot": 1}}}}, "load", "reboot"),
        (
            {"classes": {"device": {"weight": 1, "constant_throughput": 1, "wait_s": [1, 2]}}},
            "load",
            "not both",
        ),
        ({"thresholds": {"fail_ratio": 2}}, "load.thresholds.fail_ratio", "less than or equal"),
        ({"users": 10, "typo": 1}, "load.typo", "Extra inputs"),
    ],
)
def test_bad_load_sections_are_refused_with_their_path(
    load: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_load_scenario(_with(**load))
    assert (error.value.field or "").startswith(field)
    assert reason in str(error.value)


def test_meeting_users_need_a_meeting_region() -> None:
    with pytest.raises(ScenarioError, match="meeting_region"):
        parse_load_scenario(_with(classes={"participant": {"weight": 1}}))
