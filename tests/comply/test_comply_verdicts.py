"""Verdict logic: a claim nobody checks is UNCHECKED however well the rest went; a failure, or a
scenario that was due and never ran, is a FAIL; NOT APPLICABLE only when no target could check it."""

from __future__ import annotations

from typing import Any

from roomtrust.claims import Claim
from roomtrust.comply.catalogue import ScenarioRef, coverage_problems
from roomtrust.comply.verdicts import (
    FAIL,
    NA,
    PASS,
    UNCHECKED,
    claim_verdicts,
    counts,
    exit_code,
    scenario_outcomes,
)

CLAIMS = [Claim("DM-11", "TLS 1.2+", ("runtime",)), Claim("MT-08", "PSTN leg", ("runtime",))]
TLS = ScenarioRef("tls.feature", 8, "endpoints refuse TLS 1.0", frozenset({"live", "url", "DM-11"}))
GRAPH = ScenarioRef("infra.feature", 3, "log retention", frozenset({"graph", "DM-11"}))


def item(outcome: str, key: str = TLS.key, message: str = "") -> dict[str, Any]:
    return {
        "nodeid": f"features/test_x.py::t_{outcome}",
        "key": key,
        "outcome": outcome,
        "message": message,
    }


def verdicts(
    refs: list[ScenarioRef], items: list[dict[str, Any]], kind: str = "local", **kw: Any
) -> dict[str, Any]:
    outcomes = scenario_outcomes(refs, kind, kind, kw.get("tags"), items, kw.get("problem", ""))
    return {v.id: v for v in claim_verdicts(CLAIMS, refs, outcomes, kw.get("unchecked", {}))}


def test_a_claim_without_scenario_is_unchecked_never_pass() -> None:
    result = verdicts([TLS], [item("passed")], unchecked={"MT-08": "PSTN gateway not built"})
    assert result["DM-11"].verdict == PASS
    assert result["MT-08"].verdict == UNCHECKED
    assert "PSTN gateway not built" in result["MT-08"].reasons[0]
    assert exit_code(result.values()) == 1
    assert exit_code(result.values(), allow_unchecked=True) == 0


def test_a_failed_scenario_fails_its_claim_with_the_reason() -> None:
    result = verdicts([TLS], [item("failed", message="selected no endpoints: nothing to check")])
    assert result["DM-11"].verdict == FAIL
    assert "selected no endpoints" in result["DM-11"].reasons[0]
    assert exit_code(result.values(), allow_unchecked=True) == 1


def test_a_scenario_due_to_run_that_never_ran_is_a_failure() -> None:
    result = verdicts([TLS], [], problem="a test module failed to load")
    assert result["DM-11"].verdict == FAIL
    assert "failed to load" in result["DM-11"].reasons[0]


def test_one_failing_example_of_an_outline_fails_the_claim() -> None:
    result = verdicts([TLS], [item("passed"), item("failed", message="422 expected")])
    assert result["DM-11"].verdict == FAIL


def test_skipped_scenarios_leave_the_claim_unchecked() -> None:
    result = verdicts([TLS], [item("skipped", message="needs root")])
    assert result["DM-11"].verdict == UNCHECKED
    assert "needs root" in result["DM-11"].reasons[0]


def test_a_claim_only_other_targets_can_check_is_not_applicable_with_the_reason() -> None:
    result = verdicts([GRAPH], [], kind="local")
    assert result["DM-11"].verdict == NA
    assert "infrastructure graph" in result["DM-11"].reasons[0]


def test_url_targets_run_only_scenarios_tagged_url() -> None:
    server_side = ScenarioRef("dm.feature", 30, "un-deploy", frozenset({"live", "DM-11"}))
    result = verdicts([server_side], [], kind="url")
    assert result["DM-11"].verdict == NA
    assert "server-side clock, process or store" in result["DM-11"].reasons[0]


def test_scenarios_left_out_by_tags_leave_the_claim_unchecked() -> None:
    result = verdicts([TLS], [], tags="MT-08")
    assert result["DM-11"].verdict == UNCHECKED
    assert "--tags" in result["DM-11"].reasons[0]


def test_counts_cover_every_claim() -> None:
    result = verdicts([TLS], [item("passed")])
    assert counts(result.values()) == {PASS: 1, FAIL: 0, UNCHECKED: 1, NA: 0}


def test_coverage_reports_an_untagged_unlisted_claim() -> None:
    problems = coverage_problems(CLAIMS, [TLS], {})
    assert problems == [
        "MT-08: no scenario is tagged @MT-08 and features/UNCHECKED.md does not list it"
    ]
    assert coverage_problems(CLAIMS, [TLS], {"MT-08": "not built"}) == []
    assert "without a reason" in coverage_problems(CLAIMS, [TLS], {"MT-08": " "})[0]
    assert "remove it" in coverage_problems(CLAIMS, [TLS], {"MT-08": "x", "DM-11": "y"})[0]
