"""The scenario schema: the shipped files load, bad ones fail naming the field."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from devices_virtual.driver.fleet import plan_fleet
from devices_virtual.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "fleets": [
            {
                "name": "a",
                "dm_region": "us",
                "sites": [{"name": "S1"}, {"name": "S2"}],
                "models": {"MeetingBar A10": 3, "DeskVision A24": 1},
                "undeployed": 2,
                "dm_disabled": 1,
            }
        ],
        "phases": [{"kind": "deploy"}, {"kind": "steady", "duration_s": 5}],
    }


@pytest.mark.parametrize("name", ["smoke.yaml", "office-day.yaml"])
def test_shipped_scenarios_load(name: str) -> None:
    scenario = load_scenario(ROOT / "scenarios" / name)
    assert scenario.phases and scenario.fleets and scenario.seeds


def test_smoke_has_every_model() -> None:
    from devices_virtual.models import CATALOGUE

    smoke = load_scenario(ROOT / "scenarios" / "smoke.yaml")
    assert {m for f in smoke.fleets for m in f.models} == set(CATALOGUE)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["fleets"][0]["models"].update({"MeetingBar Z9": 1}), "fleets.0.models"),
        (lambda d: d["fleets"][0].update(dm_region="mars"), "fleets.0.dm_region"),
        (lambda d: d["fleets"][0].update(colour="red"), "fleets.0.colour"),
        (lambda d: d["phases"].append({"kind": "dance"}), "phases.2"),
        (
            lambda d: d["phases"].append({"kind": "steady", "duration_s": -1}),
            "phases.2.steady.duration_s",
        ),
    ],
)
def test_bad_scenarios_name_the_field(change: Any, field: str) -> None:
    data = base()
    change(data)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert info.value.field is not None and info.value.field.startswith(field)


def test_phase_naming_an_unknown_fleet_is_refused() -> None:
    data = base()
    data["phases"].append({"kind": "inject_faults", "component": "camera", "fleets": ["zz"]})
    with pytest.raises(ScenarioError, match="unknown fleet"):
        parse_scenario(data)


def test_meetings_need_users_and_a_meeting_region() -> None:
    data = base()
    data["phases"].append(
        {"kind": "meetings", "duration_s": 10, "arrivals_per_min": 1, "meeting_s": 5}
    )
    with pytest.raises(ScenarioError, match="meeting_region"):
        parse_scenario(data)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


def test_fleet_plan_is_fixed_by_the_seed() -> None:
    fleet = parse_scenario(base()).fleets[0]
    one, two = plan_fleet(fleet, random.Random(3)), plan_fleet(fleet, random.Random(3))
    assert one == two and len(one) == 6
    assert [s.deployed for s in one] == [True] * 4 + [False] * 2
    assert [s.dm_enabled for s in one] == [False] + [True] * 5
    assert [s.site for s in one] == [0, 1, 0, 1, 0, 1]
    assert plan_fleet(fleet, random.Random(4)) != one
