"""Negative controls of the `dm_operations` checks (roomtrust/comply/checks/dm_operations.py), and
whole scenarios of features/dm_operations.feature against a DM region that raises no alert and
takes any profile key (`WeakDmRegion`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roomtrust.comply.checks import dm_operations
from roomtrust.comply.fixture_regions import WeakDmRegion
from roomtrust.comply.negative import Case, Controls, FeatureRun, all_cases

pytest_plugins = ["pytester"]


def _agent_bundle(device_id: str, command_id: int) -> dict[str, Any]:
    log = f"1.0 INFO command {command_id} received: diagnostics\n"
    log += f"1.0 INFO diagnostics {command_id}: uploading the log\n"
    return {
        "device_id": device_id,
        "mac": "02:00:00:00:00:01",
        "ip_address": "192.0.2.1",
        "logs": {"agent.log": log},
        "collected_at": "t",
    }


BUNDLE_D1, BUNDLE_D2 = _agent_bundle("d1", 7), _agent_bundle("d2", 8)

CONTROLS: list[Controls] = [
    Controls(
        dm_operations.active_alert,
        {
            "alerts": [{"severity": "major", "component": "camera"}],
            "severity": "major",
            "component": "camera",
        },
        {
            "no-alert": ({"alerts": []}, "no active alert"),
            "wrong-severity": (
                {"alerts": [{"severity": "minor", "component": "camera"}]},
                "('minor', 'camera')",
            ),
        },
        single="an empty alert list is the claim broken (`no-alert`), not a selection of nothing",
    ),
    Controls(
        dm_operations.acknowledged_then_cleared,
        {"acknowledged": "acknowledged", "cleared": "cleared"},
        {
            "ack-ignored": ({"acknowledged": "active"}, "after acknowledge the alert is 'active'"),
            "never-cleared": ({"cleared": "acknowledged"}, "after clear"),
        },
        single="two alert states: there is nothing to select",
    ),
    Controls(
        dm_operations.oplog_records,
        {
            "actions": {"alert.acknowledged", "alert.cleared"},
            "expected": {"alert.acknowledged", "alert.cleared"},
        },
        {
            "clear-unlogged": ({"actions": {"alert.acknowledged"}}, "holds ['alert.acknowledged']"),
            "empty": ({"actions": set()}, "selected no operation log entries"),
        },
    ),
    Controls(
        dm_operations.profile_acknowledged,
        {
            "acks": {d: {"applied": True, "version": "p@1"} for d in "ab"},
            "version": "p@1",
        },
        {
            "stand-in-ack": (
                {"acks": {d: {"applied": True} for d in "ab"}},
                "acknowledged versions ['None']",
            ),
            "silent": ({"acks": {"a": {"applied": True, "version": "p@1"}, "b": None}}, "['b']"),
            "refused": (
                {"acks": {"a": {"applied": False, "version": "p@1", "key": "k"}}},
                "did not apply the profile: ['a']",
            ),
            "empty": ({"acks": {}}, "selected no acknowledgements"),
        },
    ),
    Controls(
        dm_operations.profile_delivered,
        {
            "pushed_ids": ["a", "b"],
            "site_ids": ["a", "b"],
            "received": {
                "a": [{"payload": {"version": "p@1"}}],
                "b": [{"payload": {"version": "p@1"}}],
            },
            "version": "p@1",
        },
        {
            "other-site-targeted": ({"pushed_ids": ["a", "b", "c"]}, "the push targeted"),
            "not-received": (
                {"received": {"a": [{"payload": {"version": "p@1"}}], "b": []}},
                "exactly once: ['b']",
            ),
            "old-version": (
                {"received": {d: [{"payload": {"version": "p@0"}}] for d in "ab"}},
                "received versions ['p@0']",
            ),
            "empty": ({"site_ids": []}, "selected no devices at the site"),
        },
    ),
    Controls(
        dm_operations.nothing_delivered,
        {"received": {"c": []}},
        {
            "leaked": ({"received": {"c": [{"kind": "config"}]}}, "received commands"),
            "empty": ({"received": {}}, "selected no devices outside the target"),
        },
    ),
    Controls(
        dm_operations.no_drift,
        {"drift_rows": [{"device_id": "x"}], "site_ids": {"a", "b"}, "listed_ids": {"a", "b"}},
        {
            "drifting": ({"drift_rows": [{"device_id": "a"}]}, "drift from the profile"),
            "unlisted": ({"listed_ids": {"a"}}, "misses ['b']"),
            "empty": ({"site_ids": set()}, "selected no devices at the site"),
        },
    ),
    Controls(
        dm_operations.diagnosis_fields_only,
        {"bundle": dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS, "v")},
        {
            "screenshot": (
                {
                    "bundle": {
                        **dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS, "v"),
                        "screenshot": "png",
                    }
                },
                "outside remote diagnosis: ['screenshot']",
            ),
            "no-logs": (
                {"bundle": dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS - {"logs"}, "v")},
                "lacks ['logs']",
            ),
            "empty": ({"bundle": {}}, "selected no fields"),
        },
    ),
    Controls(
        dm_operations.bundles_uploaded_by_agents,
        {"requested": {"d1": 7, "d2": 8}, "bundles": {"d1": BUNDLE_D1, "d2": BUNDLE_D2}},
        {
            "none-uploaded": ({"bundles": {"d1": BUNDLE_D1, "d2": None}}, "uploaded no bundle"),
            "other-device": (
                {"bundles": {"d1": BUNDLE_D1, "d2": BUNDLE_D1}},
                "the bundle for d2 names 'd1'",
            ),
            "hand-made": (
                {"bundles": {"d1": BUNDLE_D1, "d2": {**BUNDLE_D2, "logs": {"x.log": "ok"}}}},
                "not its agent's account of command 8",
            ),
            "extra-field": (
                {"bundles": {"d1": BUNDLE_D1, "d2": {**BUNDLE_D2, "screenshot": "png"}}},
                "outside remote diagnosis",
            ),
            "empty": ({"requested": {}}, "selected no devices asked for diagnostics"),
        },
    ),
    Controls(
        dm_operations.telemetry_kept,
        {"stored": 3, "now": 3, "days": 179, "retention_days": 180},
        {
            "purged-early": ({"now": 0}, "3 of 3 readings aged 179 days were purged"),
            "past-the-period": ({"days": 181}, "181 days is not within the 180-day period"),
            "nothing-sent": ({"stored": 0, "now": 0}, "selected no telemetry readings"),
        },
    ),
    Controls(
        dm_operations.telemetry_purged,
        {"stored": 3, "now": 0, "days": 181, "retention_days": 180},
        {
            "kept-forever": ({"now": 3}, "3 of 3 readings aged 181 days are still stored"),
            "within-the-period": ({"days": 179}, "179 days is not past the 180-day period"),
            "nothing-sent": ({"stored": 0}, "selected no telemetry readings"),
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


def test_dm_operations_scenario_fails_against_a_dm_region_that_raises_no_alert(
    feature_run: FeatureRun, weak_dm: WeakDmRegion
) -> None:
    (feature_run.path / "stack.json").write_text(json.dumps(weak_dm.stack().to_json()))
    feature_run.bind(
        "dm_operations",
        """
        from pathlib import Path

        import pytest
        from pytest_bdd import scenarios

        from protocol.stack import read_stack

        from features.steps.dm_operations_steps import *  # noqa: F403
        from features.steps.dm_steps import *  # noqa: F403


        @pytest.fixture(scope="session")
        def live_stack():
            return read_stack(Path(__file__).parent)


        scenarios("dm_operations.feature")
        """,
    )
    picked = "camera_fault or contacts"
    outcome = feature_run.outcomes("-k", picked)
    assert sorted(outcome) == [
        "test_a_reported_camera_fault_raises_an_alert_that_goes_active_acknowledged_cleared",
        "test_configuration_never_carries_enduser_data[contacts.list]",
    ]
    assert outcome[sorted(outcome)[0]] == (
        "call: roomtrust.comply.checks.CheckFailed: no active alert is listed for the device"
    )
    assert outcome[sorted(outcome)[1]].startswith(
        "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
        "'values.contacts.list', got 201: {'profile_id': "
    )
