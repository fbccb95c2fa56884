"""Every claim of claims.md is either checked by a tagged scenario or listed in
features/UNCHECKED.md with its reason."""

from __future__ import annotations

from roomtrust.claims import load_claims
from roomtrust.comply.catalogue import coverage_problems, read_unchecked, scenario_refs


def test_every_claim_has_a_scenario_or_a_listed_reason() -> None:
    problems = coverage_problems(load_claims(), scenario_refs(), read_unchecked())
    assert not problems, "\n".join(problems)
