"""Steps of features/infra.feature: the IN-* claims and the infrastructure half of DM-06, DM-07,
MT-02, MT-03, MT-04, MT-12, MT-14 and MT-16, over the resource graphs of every cloud stack."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from infra.policy import checks
from infra.policy.faults import FAULTS
from infra.policy.graph import Graph
from roomtrust.comply.checks import infra as verdicts
from roomtrust.comply.evidence import Evidence, nonempty
from roomtrust.comply.fixtures import comply_target, evidence
from roomtrust.comply.targets import Target
from roomtrust.harness.local import self_hosted

FIXTURES = (comply_target, evidence)  # made visible to the scenarios that import these steps

Graphs = dict[str, dict[str, Any]]


@given("the resource graphs of every cloud stack", target_fixture="graphs")
def _graphs(comply_target: Target) -> Graphs:
    snapshots = nonempty(comply_target.graph_snapshots(), "stack graph")
    return {str(g["stack"]): g for g in snapshots}


def _of_service(graphs: Graphs, service: str) -> Graphs:
    chosen = {name: g for name, g in graphs.items() if Graph(g).meta().service == service}
    nonempty(list(chosen), f"{service} stack graph")
    return chosen


def _passes(graphs: Graphs, claim: str, evidence: Evidence, label: str) -> None:
    results = [checks.check(claim, graph) for graph in graphs.values()]
    evidence.write_json(f"{claim}-{label}.json", [r.as_dict() for r in results])
    verdicts.stacks_pass([r.as_dict() for r in results], claim)


@then(parsers.parse('every stack passes the "{claim}" check'))
def _every_stack_passes(graphs: Graphs, claim: str, evidence: Evidence) -> None:
    _passes(graphs, claim, evidence, "all-stacks")


@then(parsers.parse('every "{service}" stack passes the "{claim}" check'))
def _every_service_stack_passes(
    graphs: Graphs, service: str, claim: str, evidence: Evidence
) -> None:
    _passes(_of_service(graphs, service), claim, evidence, f"{service}-stacks")


@then(parsers.parse('the "{service}" stacks run on "{cloud}" in exactly the regions "{regions}"'))
def _regions_exactly(graphs: Graphs, service: str, cloud: str, regions: str) -> None:
    stacks = {
        name: {
            "region": graph.meta().region,
            "providers": sorted({p["type"] for p in graph.providers()}),
            "clouds": sorted({r["type"].split(":", 1)[0] for r in graph.custom()}),
        }
        for name, graph in ((n, Graph(d)) for n, d in _of_service(graphs, service).items())
    }
    verdicts.stacks_on_cloud(stacks, cloud, [r.strip() for r in regions.split(",")])


@then("there is exactly one stack per environment and region")
def _one_stack_each(graphs: Graphs, evidence: Evidence) -> None:
    problems = checks.stack_set_violations(graphs)
    evidence.write_json("stack-set.json", {"stacks": sorted(graphs), "problems": problems})
    verdicts.one_stack_each(sorted(graphs), problems)


@then("no credential or account setting is shared between environments")
def _no_shared_credentials(graphs: Graphs, evidence: Evidence) -> None:
    per_stack = {
        name: [checks.provider_credentials(p) for p in Graph(g).providers()]
        for name, g in graphs.items()
    }
    problems = checks.credential_sharing_violations(graphs)
    evidence.write_json("credentials.json", {"per_stack": per_stack, "problems": problems})
    verdicts.credentials_not_shared(per_stack, problems)


@then('every "dm" stack runs the DM module that the self-hosted stack runs')
def _same_module(graphs: Graphs, evidence: Evidence) -> None:
    module, _ = self_hosted("dm")
    problems = {
        name: checks.same_codebase_violations(g, module)
        for name, g in _of_service(graphs, "dm").items()
    }
    evidence.write_json("dm-module.json", {"self_hosted_module": module, "problems": problems})
    verdicts.same_module(problems)


@then("the self-hosted stack runs that module for every DM region")
def _self_hosted_regions() -> None:
    module, regions = self_hosted("dm")
    verdicts.self_hosted_regions(module, regions, checks.REGIONS["dm"])


@pytest.fixture
def broken() -> dict[str, Any]:
    return {}


@given(parsers.parse('the "{stack}" graph with {fault}'), target_fixture="broken")
def _broken(graphs: Graphs, stack: str, fault: str) -> dict[str, Any]:
    assert stack in graphs, f"no graph of {stack}"
    assert fault in FAULTS, f"unknown fault {fault!r}"
    return FAULTS[fault](graphs[stack])


@then(parsers.parse('the "{claim}" check fails on it'))
def _fails(broken: dict[str, Any], claim: str, evidence: Evidence) -> None:
    result = checks.check(claim, broken)
    evidence.write_json(f"{claim}-fault.json", result.as_dict())
    verdicts.fails_on_fault(result.as_dict())
