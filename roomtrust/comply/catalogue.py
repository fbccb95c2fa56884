"""What the feature files claim to check: every scenario with its tags, read with pytest-bdd's
own Gherkin parser, and the list of claims knowingly left unchecked (`features/UNCHECKED.md`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_bdd.parser import FeatureParser

from roomtrust.claims import CATALOGUE, Claim

FEATURES = CATALOGUE.parent
UNCHECKED = FEATURES / "UNCHECKED.md"
CLAIM_TAG = re.compile(r"^(?:DM|MT|IN)-\d{2}$")
TARGET_TAGS = ("live", "graph", "sim")
_UNCHECKED_ROW = re.compile(r"^\s*[-*]\s*((?:DM|MT|IN)-\d{2})\s*[:\u2014-]\s*(.*?)\s*$")


@dataclass(frozen=True)
class ScenarioRef:
    """One scenario (an outline counts once) as written in a feature file."""

    feature: str  # path relative to the features directory
    line: int
    name: str
    tags: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.feature}:{self.line}"

    @property
    def claims(self) -> tuple[str, ...]:
        return tuple(sorted(t for t in self.tags if CLAIM_TAG.match(t)))

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for t in TARGET_TAGS if t in self.tags)


def scenario_refs(features: Path = FEATURES) -> list[ScenarioRef]:
    """Every scenario of every `*.feature` file under `features`, sorted by file and line."""
    refs = []
    for path in sorted(features.rglob("*.feature")):
        rel = path.relative_to(features).as_posix()
        feature = FeatureParser(str(path.parent), path.name).parse()
        for template in feature.scenarios.values():
            tags = set(template.tags) | set(feature.tags)
            if template.rule is not None:
                tags |= set(template.rule.tags)
            for examples in template.examples:
                tags |= set(examples.tags or ())
            refs.append(ScenarioRef(rel, template.line_number, template.name, frozenset(tags)))
    return sorted(refs, key=lambda r: (r.feature, r.line))


def scenarios_by_claim(
    claims: Iterable[Claim], refs: Iterable[ScenarioRef]
) -> dict[str, list[ScenarioRef]]:
    """Claim ID -> the scenarios tagged with it (every claim present, possibly with none)."""
    index: dict[str, list[ScenarioRef]] = {claim.id: [] for claim in claims}
    for ref in refs:
        for claim_id in ref.claims:
            index.setdefault(claim_id, []).append(ref)
    return index


def read_unchecked(path: Path = UNCHECKED) -> dict[str, str]:
    """Claim ID -> the reason it has no scenario yet, from lines like `- MT-08: reason`."""
    if not path.exists():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        match = _UNCHECKED_ROW.match(line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def coverage_problems(
    claims: Iterable[Claim], refs: Iterable[ScenarioRef], unchecked: dict[str, str]
) -> list[str]:
    """Why the catalogue and the features disagree; empty when every claim is accounted for."""
    claims = list(claims)
    known = {claim.id for claim in claims}
    index = scenarios_by_claim(claims, refs)
    problems = []
    for claim in claims:
        covered = bool(index[claim.id])
        listed = claim.id in unchecked
        if not covered and not listed:
            problems.append(
                f"{claim.id}: no scenario is tagged @{claim.id} and features/UNCHECKED.md "
                "does not list it"
            )
        elif not covered and not unchecked[claim.id].strip():
            problems.append(f"{claim.id}: listed in features/UNCHECKED.md without a reason")
        elif covered and listed:
            problems.append(f"{claim.id}: has scenarios now; remove it from features/UNCHECKED.md")
    for claim_id in sorted(set(unchecked) - known):
        problems.append(f"{claim_id}: listed in features/UNCHECKED.md but not in claims.md")
    for claim_id in sorted(set(index) - known):
        problems.append(f"{claim_id}: scenarios are tagged with it but claims.md has no such ID")
    return problems
