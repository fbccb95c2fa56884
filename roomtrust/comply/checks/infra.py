"""Checks of features/infra.feature (the IN-* claims and the infrastructure half of DM-06, DM-07,
MT-02, MT-03, MT-04, MT-12, MT-14, MT-16) over what the graph policy (`infra.policy.checks`) found
in the resource graphs of the cloud stacks: its per-stack results (`CheckResult.as_dict()`), the
problems of its cross-stack rules, and the providers and regions of each stack."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from roomtrust.comply.checks import check, names_of, require, selected

MAX_LISTED = 20  # violations quoted in a reason


@check("infra")
def stacks_pass(results: Sequence[Mapping[str, Any]], claim: str) -> None:
    """The graph check of `claim` selected resources in every stack and found no violation."""
    selected(results, f"stack results of {claim}")
    empty = [str(r.get("stack")) for r in results if not r.get("selected")]
    require(not empty, f"{claim} selected no resource in {empty}")
    failed = [
        f"{r.get('stack')}: {v.get('message')} ({v.get('urn')})"
        for r in results
        for v in r.get("violations") or []
    ]
    require(not failed, "\n".join(failed[:MAX_LISTED]))


@check("infra")
def stacks_on_cloud(
    stacks: Mapping[str, Mapping[str, Any]], cloud: str, regions: Collection[str]
) -> None:
    """A service's stacks use only `cloud`'s provider and resources, and run in exactly the listed
    regions (`stacks`: name -> {"region", "providers", "clouds"})."""
    selected(stacks, "stacks of the service")
    for name, stack in stacks.items():
        providers = set(stack.get("providers") or ())
        require(
            providers == {f"pulumi:providers:{cloud}"},
            f"{name}: providers {names_of(providers)}",
        )
        clouds = set(stack.get("clouds") or ())
        require(clouds == {cloud}, f"{name}: resources of {names_of(clouds)}")
    seen = {str(s.get("region")) for s in stacks.values()}
    require(seen == set(regions), f"the stacks run in {names_of(seen)}, not {names_of(regions)}")


@check("infra")
def one_stack_each(stacks: Collection[str], problems: Sequence[str]) -> None:
    """There is exactly one stack per environment and region (`problems`: what the cross-stack
    rule found)."""
    selected(stacks, "stacks")
    require(not problems, "\n".join(problems))


@check("infra")
def credentials_not_shared(
    credentials: Mapping[str, Sequence[Mapping[str, Any]]], problems: Sequence[str]
) -> None:
    """No credential or account setting is shared between environments (`credentials`: stack ->
    its providers' credential settings; `problems`: what the cross-stack rule found)."""
    selected([c for found in credentials.values() for c in found], "provider credentials")
    require(not problems, "\n".join(problems))


@check("infra")
def same_module(problems: Mapping[str, Sequence[str]]) -> None:
    """Every DM stack runs the module the self-hosted stack runs (`problems`: stack -> what
    differs)."""
    selected(problems, "DM stacks")
    differ = {stack: found for stack, found in problems.items() if found}
    require(not differ, f"{differ}")


@check("infra")
def self_hosted_regions(module: str, regions: Sequence[str], expected: Sequence[str]) -> None:
    """The self-hosted stack runs a DM module for exactly the DM regions of the cloud."""
    selected(regions, "self-hosted DM regions")
    require(module.startswith("services.dm."), f"the self-hosted stack runs {module!r}")
    require(
        tuple(regions) == tuple(expected),
        f"the self-hosted DM regions are {list(regions)}, not {list(expected)}",
    )


@check("infra")
def fails_on_fault(result: Mapping[str, Any]) -> None:
    """A graph check run on a graph that breaks its claim selects resources and reports
    violations (`result`: its `CheckResult.as_dict()`)."""
    claim = result.get("claim")
    require(result.get("selected"), f"{claim} selected no resource on the broken graph")
    require(
        not result.get("passed") and result.get("violations"),
        f"{claim} passed on a graph that breaks it",
    )
