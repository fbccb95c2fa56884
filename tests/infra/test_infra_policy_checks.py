"""The policy checks: every stack passes every check; every fault fails the check guarding it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.policy import checks
from infra.policy.faults import FAULTS, Fault
from infra.stacks.catalogue import ENVIRONMENTS

Graphs = dict[str, dict[str, Any]]


def _sample(graphs: Graphs, service: str, region: str = "eu") -> dict[str, Any]:
    return copy.deepcopy(graphs[f"prod-{service}-{region}"])


def test_every_stack_passes_every_check_and_each_selects_resources(stack_graphs: Graphs) -> None:
    assert len(stack_graphs) == 21
    for name, graph in stack_graphs.items():
        for result in checks.check_all(graph):
            assert result.selected > 0, f"{name} {result.claim} selected nothing"
            assert result.passed, f"{name} {result.claim}: {result.violations}"


def test_there_is_one_check_per_in_claim() -> None:
    assert tuple(f"IN-0{n}" for n in range(1, 9)) == checks.IN_CLAIMS


@pytest.mark.parametrize("fault", FAULTS.values(), ids=lambda f: f.name.replace(" ", "-"))
def test_a_fault_fails_the_check_that_guards_it(stack_graphs: Graphs, fault: Fault) -> None:
    good = _sample(stack_graphs, fault.service)
    assert checks.check(fault.claim, good).passed
    result = checks.check(fault.claim, fault(good))
    assert not result.passed
    assert result.violations and all(v.claim == fault.claim for v in result.violations)
    assert checks.check(fault.claim, good).passed, "the fault changed the original graph"


def test_every_check_has_at_least_one_fault() -> None:
    assert set(checks.CHECKS) <= {f.claim for f in FAULTS.values()}


def test_the_issue_fixtures_are_all_present() -> None:
    listed = {
        "a storage account without TLS 1.2": "IN-02",
        "a bucket with replication": "IN-04",
        "a log group with 30-day retention": "IN-05",
        "an ALB with an old TLS policy": "IN-02",
        "a database without forced TLS": "IN-02",
        "a service without health checks": "IN-07",
        "an eu stack that places a resource in a US region": "IN-01",
    }
    assert {name: FAULTS[name].claim for name in listed} == listed


def test_a_missing_property_is_a_violation() -> None:
    assert checks.resource_violations("IN-02", checks.AZ_STORAGE, {}) == [
        "no minimumTlsVersion: the account would accept TLS 1.0",
        "enableHttpsTrafficOnly is not true: plain HTTP would be accepted",
    ]
    assert checks.resource_violations("IN-05", checks.AWS_LOG_GROUP, {}) == [
        "no retentionInDays: logs would be kept forever"
    ]
    assert checks.resource_violations("IN-02", checks.AWS_LISTENER, {"protocol": "HTTPS"}) == [
        "no sslPolicy: the default ELBSecurityPolicy-2016-08 admits TLS 1.0"
    ]
    assert checks.resource_violations("IN-08", checks.AWS_RDS, {"backupRetentionPeriod": 7})
    assert checks.resource_violations("IN-07", checks.AZ_APP, {}) != []


def test_a_check_that_selects_nothing_fails() -> None:
    for result in checks.check_all({"stack": "empty", "resources": []}):
        assert result.selected == 0
        assert not result.passed
        assert any("selected no resource" in v.message for v in result.violations)


def test_an_unrelated_resource_is_not_selected() -> None:
    document = {
        "stack": "x",
        "resources": [
            {"urn": "u", "type": "aws:sns/topic:Topic", "custom": True, "inputs": {}},
        ],
    }
    assert checks.check("IN-05", document).selected == 0


def test_the_stack_set_is_exactly_every_environment_and_region(stack_graphs: Graphs) -> None:
    assert checks.stack_set_violations(stack_graphs) == []
    missing = {k: v for k, v in stack_graphs.items() if k != "staging-meeting-sa"}
    assert checks.stack_set_violations(missing) == ["no stack for staging/meeting/sa"]
    doubled = {**stack_graphs, "copy": stack_graphs["ci-dm-au"]}
    assert any("ci/dm/au has 2 stacks" in m for m in checks.stack_set_violations(doubled))


def test_environments_share_no_credentials(stack_graphs: Graphs) -> None:
    assert checks.credential_sharing_violations(stack_graphs) == []
    leaked = copy.deepcopy(stack_graphs)
    prod = next(
        p for p in leaked["prod-meeting-na"]["resources"] if p["type"] == "pulumi:providers:aws"
    )
    for resource in leaked["staging-meeting-na"]["resources"]:
        if resource["type"] == "pulumi:providers:aws":
            resource["inputs"]["allowedAccountIds"] = prod["inputs"]["allowedAccountIds"]
    found = checks.credential_sharing_violations(leaked)
    assert found and all("prod" in m and "staging" in m for m in found)


def test_each_environment_pins_its_own_credentials(stack_graphs: Graphs) -> None:
    by_env: dict[str, set[str]] = {env: set() for env in ENVIRONMENTS}
    for graph in stack_graphs.values():
        env = next(
            r["inputs"]["environment"]
            for r in graph["resources"]
            if r["type"].startswith("roomtrust:") and "environment" in r["inputs"]
        )
        for provider in graph["resources"]:
            if provider["type"].startswith("pulumi:providers:"):
                by_env[env] |= {repr(v) for v in checks.provider_credentials(provider).values()}
    assert all(by_env.values())
    assert not by_env["prod"] & by_env["staging"]
    assert not by_env["prod"] & by_env["ci"]
    assert not by_env["staging"] & by_env["ci"]


def test_dm_runs_the_module_of_the_self_hosted_stack(stack_graphs: Graphs) -> None:
    from roomtrust.harness.local import self_hosted

    module, _ = self_hosted("dm")
    for name in (n for n in stack_graphs if "-dm-" in n):
        assert checks.same_codebase_violations(stack_graphs[name], module) == []
    assert checks.same_codebase_violations(stack_graphs["prod-dm-us"], "services.other.main")
    assert checks.same_codebase_violations(stack_graphs["prod-meeting-na"], module) == [
        "no DM container app selected"
    ]
