"""Negative controls of the `dm` checks (roomtrust/comply/checks/dm.py), and whole scenarios of
features/dm.feature against a DM region that enrolls anyone and stores anything
(`WeakDmRegion`): they must fail in the step that checks the claim."""

from __future__ import annotations

import json

import pytest

from roomtrust.comply.checks import dm
from roomtrust.comply.fixture_regions import WeakDmRegion
from roomtrust.comply.negative import Case, Controls, FeatureRun, all_cases
from services.dm.domain.catalogue import MANAGED_MODELS

pytest_plugins = ["pytester"]

CONTROLS: list[Controls] = [
    Controls(
        dm.every_model_enrolled,
        {"enrolled_models": set(MANAGED_MODELS)},
        {
            "one-missing": (
                {"enrolled_models": set(MANAGED_MODELS) - {"DeskVision A24"}},
                "no enrolled device of ['DeskVision A24']",
            ),
            "foreign-model": (
                {"enrolled_models": {*MANAGED_MODELS, "MeetingPhone Z1"}},
                "outside the catalogue",
            ),
            "empty": ({"enrolled_models": set()}, "selected no enrolled devices"),
        },
    ),
    Controls(
        dm.no_certificate_issued,
        {"has_certificate": False, "who": "a device nobody deployed"},
        {"issued": ({"has_certificate": True}, "was issued a certificate")},
        single="one flag: there is nothing to select",
    ),
    Controls(
        dm.no_table_gained_a_row,
        {"before": {"devices": 3, "telemetry": 5}, "after": {"devices": 3, "telemetry": 5}},
        {
            "telemetry-stored": ({"after": {"devices": 3, "telemetry": 6}}, "gained rows"),
            "new-table": (
                {"after": {"devices": 3, "telemetry": 5, "transcripts": 0}},
                "set of tables changed",
            ),
            "row-deleted": ({"after": {"devices": 2, "telemetry": 5}}, "row counts changed"),
            "empty": ({"before": {}}, "selected no tables"),
        },
    ),
    Controls(
        dm.refused_at_handshake,
        {"answered_status": None, "region": "us"},
        {
            "served": ({"answered_status": 200}, "completed the handshake"),
            "refused-too-late": ({"answered_status": 403}, "answered HTTP 403"),
        },
        single="one handshake outcome: there is nothing to select",
    ),
    Controls(
        dm.listed_with_firmware,
        {
            "rows": [{"device_id": "d1", "firmware_version": "3.1.4"}],
            "device_id": "d1",
            "version": "3.1.4",
        },
        {
            "not-updated": (
                {"rows": [{"device_id": "d1", "firmware_version": "3.0.0"}]},
                "shows firmware '3.0.0'",
            ),
            "not-listed": ({"device_id": "d2"}, "not in the device list"),
            "empty": ({"rows": []}, "selected no listed devices"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)


def test_dm_scenarios_fail_against_a_dm_region_that_enrolls_anyone_and_stores_anything(
    feature_run: FeatureRun, weak_dm: WeakDmRegion
) -> None:
    (feature_run.path / "stack.json").write_text(json.dumps(weak_dm.stack().to_json()))
    feature_run.bind(
        "dm",
        """
        from pathlib import Path

        import pytest
        from pytest_bdd import scenarios

        from protocol.stack import read_stack

        from features.steps.dm_steps import *  # noqa: F403


        @pytest.fixture(scope="session")
        def live_stack():
            return read_stack(Path(__file__).parent)


        scenarios("dm.feature")
        """,
    )
    picked = "nobody_deployed or accepts_no_telemetry or meeting_transcript"
    outcome = feature_run.outcomes("-k", picked)
    assert outcome == {
        "test_a_device_nobody_deployed_gets_no_certificate_and_leaves_nothing_behind": (
            "call: roomtrust.comply.checks.CheckFailed: a device nobody deployed was issued a "
            "certificate"
        ),
        "test_without_a_certificate_the_service_accepts_no_telemetry": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 401 with a reason, got 200: "
            "{'stored': True}"
        ),
        "test_telemetry_outside_the_listed_data_categories_is_refused_and_stores_nothing"
        "[meeting_transcript]": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
            "'meeting_transcript', got 200: {'stored': True}"
        ),
    }
