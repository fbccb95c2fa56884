"""Negative controls of the `sim` checks (roomtrust/comply/checks/sim.py) over simulation records,
and whole scenarios of features/sim.feature, run through the comply plugin, on records with a
misplaced conference and a dropped call: each claim's verdict is FAIL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.regions import MEETING_REGIONS
from roomtrust.claims import load_claims
from roomtrust.comply.catalogue import scenario_refs
from roomtrust.comply.checks import sim as sim_checks
from roomtrust.comply.negative import Case, Controls, FeatureRun, all_cases
from roomtrust.comply.verdicts import FAIL, claim_verdicts, scenario_outcomes
from sim.latency import latency_matrix

pytest_plugins = ["pytester"]

MATRIX = latency_matrix()


def placement(*locations: str, region: str | None = None) -> dict[str, Any]:
    means = {r: sum(MATRIX[loc][r] for loc in locations) / len(locations) for r in MEETING_REGIONS}
    best = min(means, key=lambda r: means[r])
    return {"locations": list(locations), "region": region or best, "candidates": means}


def call_load(*placements: dict[str, Any]) -> dict[str, Any]:
    chosen = placements or tuple(
        placement(*locs)
        for locs in (("germany",), ("japan",), ("singapore",), ("us-east",), ("brazil", "chile"))
    )
    return {
        "scenario": "sim-call-load",
        "metrics": {"offered": 120},
        "series": {"placements": list(chosen)},
    }


def failover(replaced_after: tuple[float, ...] = (300.0, 420.0), **metrics: Any) -> dict[str, Any]:
    return {
        "scenario": "sim-failover",
        "metrics": {"relay_failures": 2, "moved_calls": 14, "dropped_calls": 0, **metrics},
        "series": {"replacements": [{"replaced_after_s": s} for s in replaced_after]},
    }


def without_metric(name: str) -> dict[str, Any]:
    record = failover()
    del record["metrics"][name]
    return record


CONTROLS: list[Controls] = [
    Controls(
        sim_checks.has_placements,
        {"record": call_load()},
        {
            "no-series": (
                {"record": {"scenario": "sim-call-load", "metrics": {}}},
                "selected no placements",
            ),
            "empty": ({"record": {"series": {"placements": []}}}, "selected no placements"),
        },
    ),
    Controls(
        sim_checks.placements_optimal,
        {"record": call_load(), "matrix": MATRIX},
        {
            "germany-to-na": (
                {"record": call_load(placement("germany", region="na"))},
                "not in the nearest region",
            ),
            "unknown-location": (
                {
                    "record": call_load(
                        {"locations": ["atlantis"], "region": "eu", "candidates": {"eu": 1}}
                    )
                },
                "not in the latency matrix",
            ),
            "empty": ({"record": {"series": {"placements": []}}}, "selected no placements"),
        },
    ),
    Controls(
        sim_checks.placed_by_continent,
        {"record": call_load()},
        {
            "japan-to-eu": (
                {
                    "record": call_load(
                        placement("germany"), placement("us-east"), placement("japan", region="eu")
                    )
                },
                "japan -> eu",
            ),
            "europe-only": ({"record": call_load(placement("germany"))}, "only from ['eu']"),
            "empty": ({"record": {"series": {"placements": []}}}, "selected no placements"),
        },
    ),
    Controls(
        sim_checks.relay_failed_under_load,
        {"record": failover()},
        {
            "no-failure": ({"record": failover(relay_failures=0)}, "no relay failed"),
            "idle-relays": ({"record": failover(moved_calls=0)}, "carried no call"),
            "no-metric": (
                {"record": without_metric("relay_failures")},
                "no metric 'relay_failures'",
            ),
        },
        single="metrics of one simulation record: a missing metric is `no-metric`",
    ),
    Controls(
        sim_checks.no_call_dropped,
        {"record": failover()},
        {
            "dropped": ({"record": failover(dropped_calls=3)}, "3 call(s) were dropped"),
            "no-metric": ({"record": without_metric("dropped_calls")}, "no metric 'dropped_calls'"),
            "no-calls": ({"record": failover(moved_calls=0)}, "no call was moved"),
        },
        single="metrics of one simulation record: a missing metric is `no-metric`",
    ),
    Controls(
        sim_checks.replaced_within,
        {"record": failover(), "minutes": 10},
        {
            "slow": ({"record": failover((300.0, 900.0))}, "later than 10 minutes"),
            "not-replaced": ({"record": failover((300.0,))}, "1 replacement(s) for 2"),
            "empty": ({"record": failover(())}, "selected no relay replacements"),
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


def test_sim_scenarios_fail_on_simulation_records_with_a_misplaced_conference_and_a_dropped_call(
    feature_run: FeatureRun, tmp_path: Path
) -> None:
    results = tmp_path / "sim-results"
    results.mkdir()
    bad_load = call_load(*call_load()["series"]["placements"], placement("japan", region="na"))
    (results / "call-load.json").write_text(json.dumps(bad_load))
    (results / "failover.json").write_text(json.dumps(failover(dropped_calls=3)))
    spec = tmp_path / "target.json"
    spec.write_text(json.dumps({"kind": "sim", "name": "broken-sim", "results": str(results)}))
    feature_run.bind(
        "sim",
        """
        from pytest_bdd import scenarios

        from features.steps.sim_steps import *  # noqa: F403

        scenarios("sim.feature")
        """,
    )
    out = tmp_path / "report"
    feature_run.inline(
        "-p",
        "roomtrust.comply.plugin",
        f"--comply-target={spec}",
        f"--comply-out={out}",
        f"--comply-features={feature_run.path}",
    )
    # the verdicts `roomtrust comply --target sim:DIR` would give, from the plugin's results
    items = json.loads((out / "results-broken-sim.json").read_text())["items"]
    refs = scenario_refs(feature_run.path)
    outcomes = scenario_outcomes(refs, "sim", "broken-sim", None, items)
    verdicts = {v.id: v for v in claim_verdicts(load_claims(), refs, outcomes, {})}
    assert verdicts["MT-01"].verdict == FAIL
    assert "not in the nearest region" in verdicts["MT-01"].reasons[0]
    assert verdicts["MT-03"].verdict == FAIL
    assert "3 call(s) were dropped" in verdicts["MT-03"].reasons[0]
