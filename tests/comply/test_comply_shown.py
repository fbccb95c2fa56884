"""What the compliance report shows itself (roomtrust.comply.shown): the DM-13 push scenario shows
the device agents' acknowledgements, the DM-05 diagnostics scenario the bundles the agents
uploaded, the MT-16 recording scenario the spectrum sox measured. A scenario that must show
something and passed without it fails its claim (the negative control); what it showed reaches
compliance.json and index.html. The feature scenarios themselves (features/test_dm_operations.py,
features/test_media.py) keep these figures with `Evidence.show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.compliance.build import build_report
from roomtrust.claims import Claim
from roomtrust.comply import shown
from roomtrust.comply.catalogue import ScenarioRef, scenario_refs
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.verdicts import FAIL, PASS, claim_verdicts, counts, scenario_outcomes

PUSH = "A bulk push to one site reaches every device there and no other"
CLAIMS = [Claim("DM-13", "Bulk configuration", ("runtime",))]
REF = ScenarioRef("dm_operations.feature", 17, PUSH, frozenset({"live", "DM-13"}))
ACKS = {
    "label": shown.CONFIG_ACKS,
    "figures": {"version": "p-1@1", "devices": 3, "applied": 3},
}


def _verdict(shown_entries: list[dict[str, Any]]) -> Any:
    item = {
        "nodeid": "features/test_dm_operations.py::test_push",
        "key": REF.key,
        "outcome": "passed",
        "message": "",
        "evidence": ["evidence/local/x/config-acknowledgements.json"],
        "shown": shown_entries,
    }
    outcomes = scenario_outcomes([REF], "local", "local", None, [item])
    (verdict,) = claim_verdicts(CLAIMS, [REF], outcomes, {})
    return verdict


def test_every_scenario_that_must_show_evidence_exists_in_the_features() -> None:
    names = {ref.name for ref in scenario_refs()}
    assert set(shown.MUST_SHOW) <= names, set(shown.MUST_SHOW) - names
    tagged = {ref.name: ref.claims for ref in scenario_refs() if ref.name in shown.MUST_SHOW}
    claims = {c for found in tagged.values() for c in found}
    assert {"DM-13", "DM-05", "MT-16"} <= claims


def test_a_scenario_that_showed_its_evidence_passes_and_the_report_holds_it(
    tmp_path: Path,
) -> None:
    verdict = _verdict([ACKS])
    assert verdict.verdict == PASS
    index = build_report(tmp_path, [verdict], counts([verdict]), {"generated": "now"})
    document = json.loads((tmp_path / "compliance.json").read_text())
    (scenario,) = document["claims"][0]["scenarios"]
    assert scenario["shown"] == [ACKS]
    html = index.read_text()
    assert f'data-label="{shown.CONFIG_ACKS}"' in html
    assert "applied = 3" in html and "version = p-1@1" in html


def test_a_scenario_that_passed_without_showing_its_evidence_fails_its_claim(
    tmp_path: Path,
) -> None:
    for entries in ([], [{"label": "something else", "figures": {}}]):
        verdict = _verdict(entries)
        assert verdict.verdict == FAIL
        assert f"passed without showing its evidence: {shown.CONFIG_ACKS}" in verdict.reasons[0]
    html = build_report(tmp_path, [verdict], counts([verdict]), {"generated": "now"}).read_text()
    assert f'data-label="{shown.CONFIG_ACKS}"' not in html


def test_a_scenario_with_nothing_to_show_is_not_held_to_it() -> None:
    other = ScenarioRef("dm_operations.feature", 30, "Another", frozenset({"live", "DM-13"}))
    item = {"nodeid": "n", "key": other.key, "outcome": "passed", "message": ""}
    outcomes = scenario_outcomes([other], "local", "local", None, [item])
    (verdict,) = claim_verdicts(CLAIMS, [other], outcomes, {})
    assert verdict.verdict == PASS


def test_evidence_show_keeps_every_entry_in_order(tmp_path: Path) -> None:
    evidence = Evidence(tmp_path / "evidence")
    assert evidence.shown() == []
    evidence.show("first", {"a": 1})
    evidence.show("second", {"b": [1, 2]})
    assert evidence.shown() == [
        {"label": "first", "figures": {"a": 1}},
        {"label": "second", "figures": {"b": [1, 2]}},
    ]
