"""From scenario results to one verdict per claim: PASS, FAIL, UNCHECKED or NOT APPLICABLE.

The rules, in order:
- a claim that no scenario is tagged with is UNCHECKED (with the reason from UNCHECKED.md), never
  PASS, however the rest of the run went;
- any failed scenario, or a scenario that was due to run and never ran, makes it FAIL (a scenario
  that passed without showing what `comply.shown` requires of it counts as failed);
- otherwise one passed scenario makes it PASS;
- otherwise a skipped scenario, or one left out by --tags, leaves it UNCHECKED;
- otherwise, when no target of this run could check any of its scenarios, NOT APPLICABLE.
Every verdict but PASS carries its reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from roomtrust.claims import Claim
from roomtrust.comply import shown as shown_rules
from roomtrust.comply.catalogue import ScenarioRef, scenarios_by_claim
from roomtrust.comply.selection import EXCLUDED, NOT_APPLICABLE, RUN, decide

PASS, FAIL, UNCHECKED, NA = "PASS", "FAIL", "UNCHECKED", "NOT APPLICABLE"
VERDICTS = (PASS, FAIL, UNCHECKED, NA)
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass
class ScenarioOutcome:
    """One scenario against one target."""

    key: str
    name: str
    target: str
    status: str  # passed, failed, error, skipped, not applicable, excluded
    reason: str = ""
    evidence: list[str] = field(default_factory=list)
    runs: int = 0  # test items (an outline runs once per example)
    shown: list[dict[str, Any]] = field(default_factory=list)  # Evidence.show, in the report


@dataclass
class ClaimVerdict:
    id: str
    text: str
    checked_at: tuple[str, ...]
    verdict: str
    reasons: list[str]
    scenarios: list[ScenarioOutcome]

    @property
    def evidence(self) -> list[str]:
        return [path for s in self.scenarios for path in s.evidence]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checked_at"] = list(self.checked_at)
        data["evidence"] = self.evidence
        return data


def _aggregate(items: Sequence[dict[str, Any]]) -> tuple[str, str]:
    outcomes = [item["outcome"] for item in items]
    messages = [f"{item['nodeid'].split('::')[-1]}: {item['message']}" for item in items]

    def reasons(kind: Iterable[str]) -> str:
        wanted = set(kind)
        chosen = [m for o, m in zip(outcomes, messages, strict=True) if o in wanted]
        return "; ".join(chosen[:3]) + (f" (+{len(chosen) - 3} more)" if len(chosen) > 3 else "")

    if FAILED in outcomes:
        return FAILED, reasons({FAILED, ERROR})
    if ERROR in outcomes:
        return ERROR, reasons({ERROR})
    if any(o not in (PASSED, SKIPPED) for o in outcomes):
        return ERROR, "the run stopped before the scenario finished"
    if all(o == SKIPPED for o in outcomes):
        return SKIPPED, reasons({SKIPPED})
    if SKIPPED in outcomes:
        return PASSED, "some examples skipped: " + reasons({SKIPPED})
    return PASSED, ""


def scenario_outcomes(
    refs: Iterable[ScenarioRef],
    kind: str,
    target: str,
    tags: str | None,
    items: Iterable[dict[str, Any]],
    run_problem: str = "",
) -> list[ScenarioOutcome]:
    """Every scenario's outcome against one target, from the items the pytest run recorded.

    `run_problem` explains scenarios that were due and have no item (a collection error, a crash).
    """
    by_key: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_key.setdefault(item["key"], []).append(item)
    outcomes = []
    for ref in refs:
        decision = decide(ref.tags, kind, tags)
        found = by_key.get(ref.key, [])
        evidence = [path for item in found for path in item.get("evidence", [])]
        if decision.status != RUN:
            outcomes.append(
                ScenarioOutcome(ref.key, ref.name, target, decision.status, decision.reason)
            )
        elif not found:
            why = run_problem or (
                "selected for this target but no test ran it: is its feature bound with "
                "scenarios() in a features/test_*.py module?"
            )
            outcomes.append(ScenarioOutcome(ref.key, ref.name, target, ERROR, why))
        else:
            status, reason = _aggregate(found)
            shown = [entry for item in found for entry in item.get("shown", [])]
            absent = shown_rules.missing(ref.name, shown)
            if status == PASSED and absent:
                status = FAILED
                reason = f"passed without showing its evidence: {', '.join(absent)}"
            outcomes.append(
                ScenarioOutcome(
                    ref.key, ref.name, target, status, reason, evidence, len(found), shown
                )
            )
    return outcomes


def _label(outcome: ScenarioOutcome) -> str:
    return f'"{outcome.name}" ({outcome.key}, {outcome.target})'


def claim_verdicts(
    claims: Iterable[Claim],
    refs: Iterable[ScenarioRef],
    outcomes: Iterable[ScenarioOutcome],
    unchecked: dict[str, str],
) -> list[ClaimVerdict]:
    claims = list(claims)
    index = scenarios_by_claim(claims, refs)
    by_key: dict[str, list[ScenarioOutcome]] = {}
    for outcome in outcomes:
        by_key.setdefault(outcome.key, []).append(outcome)
    verdicts = []
    for claim in claims:
        mine = [o for ref in index[claim.id] for o in by_key.get(ref.key, [])]
        statuses = {o.status for o in mine}
        if not index[claim.id]:
            reason = unchecked.get(claim.id) or f"no scenario is tagged @{claim.id}"
            verdict, reasons = UNCHECKED, [f"no scenario checks it: {reason}"]
        elif statuses & {FAILED, ERROR}:
            verdict = FAIL
            reasons = [
                f"{_label(o)} {o.status}: {o.reason}" for o in mine if o.status in (FAILED, ERROR)
            ]
        elif PASSED in statuses:
            verdict = PASS
            reasons = [f"{_label(o)}: {o.reason}" for o in mine if o.status == PASSED and o.reason]
        elif statuses & {SKIPPED, EXCLUDED}:
            verdict = UNCHECKED
            reasons = [
                f"{_label(o)} {o.status}: {o.reason}"
                for o in mine
                if o.status in (SKIPPED, EXCLUDED)
            ]
        elif mine:
            verdict = NA
            reasons = sorted(
                {f"{o.target} target: {o.reason}" for o in mine if o.status == NOT_APPLICABLE}
            )
        else:
            verdict, reasons = UNCHECKED, ["no target of this run considered its scenarios"]
        verdicts.append(
            ClaimVerdict(claim.id, claim.text, claim.checked_at, verdict, reasons, mine)
        )
    return verdicts


def counts(verdicts: Iterable[ClaimVerdict]) -> dict[str, int]:
    tally = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        tally[v.verdict] += 1
    return tally


def exit_code(verdicts: Iterable[ClaimVerdict], allow_unchecked: bool = False) -> int:
    """1 on any FAIL; 1 on any UNCHECKED unless allowed; otherwise 0."""
    tally = counts(verdicts)
    if tally[FAIL] or (tally[UNCHECKED] and not allow_unchecked):
        return 1
    return 0
