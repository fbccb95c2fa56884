"""The pulumi_policy wrappers: the same checks, fed the way the engine feeds a policy pack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.checks import CHECKS
from infra.policy.faults import FAULTS
from infra.policy.policies import build_policies, graph_from_policy_resources

POLICY_DIR = Path(__file__).resolve().parents[2] / "infra" / "policy"


def _as_policy_resources(graph: dict[str, Any]) -> list[PolicyResource]:
    """What the engine passes: props, URN, parent, and the provider resource with its props."""
    by_urn = {r["urn"]: r for r in graph["resources"]}
    made: dict[str, PolicyResource] = {}

    def make(urn: str) -> PolicyResource:
        if urn in made:
            return made[urn]
        r = by_urn[urn]
        provider = by_urn.get(r["provider"] or "")
        policy_provider = (
            PolicyProviderResource(
                provider["type"], provider["inputs"], provider["urn"], provider["name"]
            )
            if provider
            else None
        )
        parent = make(r["parent"]) if r["parent"] else None
        made[urn] = PolicyResource(
            r["type"], r["inputs"], urn, r["name"],
            PolicyResourceOptions(False, [], None, [], None, [], r["parent"]),  # type: ignore[arg-type]
            policy_provider, parent, [], {},
        )  # fmt: skip
        return made[urn]

    return [make(r["urn"]) for r in graph["resources"]]


def _run(policy: StackValidationPolicy, graph: dict[str, Any]) -> list[tuple[str, str | None]]:
    reported: list[tuple[str, str | None]] = []
    args = StackValidationArgs(_as_policy_resources(graph))
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_one_mandatory_policy_per_check() -> None:
    policies = build_policies()
    assert [p.name for p in policies] == [f"roomtrust-{c.lower()}" for c in CHECKS]
    assert all(isinstance(p, StackValidationPolicy) for p in policies)


def test_policy_resources_rebuild_the_same_graph(stack_graphs: dict[str, Any]) -> None:
    graph = stack_graphs["prod-meeting-na"]
    rebuilt = graph_from_policy_resources(_as_policy_resources(graph))
    slim = [
        {k: r[k] for k in ("urn", "type", "parent", "provider", "inputs", "region")}
        for r in graph["resources"]
    ]
    assert [{k: r[k] for k in slim[0]} for r in rebuilt["resources"]] == slim


def test_policies_pass_good_stacks_and_report_faults(stack_graphs: dict[str, Any]) -> None:
    policies = {p.name: p for p in build_policies()}
    for name in ("staging-dm-au", "prod-meeting-sa"):
        for policy in policies.values():
            assert _run(policy, stack_graphs[name]) == [], (name, policy.name)
    for fault in FAULTS.values():
        graph = fault(stack_graphs[f"ci-{fault.service}-eu"])
        reported = _run(policies[f"roomtrust-{fault.claim.lower()}"], graph)
        assert reported, fault.name


def test_checks_import_nothing_from_pulumi() -> None:
    code = (
        "import sys, infra.policy.checks, infra.policy.faults, infra.policy.geography;"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_main_builds_the_policy_pack() -> None:
    builders = [p.name for p in POLICY_DIR.glob("*.py") if "PolicyPack(" in p.read_text()]
    assert builders == ["__main__.py"]
    assert (POLICY_DIR / "PulumiPolicy.yaml").is_file()
