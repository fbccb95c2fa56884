"""The recording mocks: what a snapshot holds (types, inputs, parents, provider regions)."""

from __future__ import annotations

import json
from typing import Any

from infra.dm import DM_LOCATIONS
from infra.meeting import MEETING_AWS_REGIONS
from infra.snapshot import snapshot_stack
from infra.snapshot.mocks import plain, redacted
from infra.stacks import catalogue

Graphs = dict[str, dict[str, Any]]


def _of(graph: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    found = [r for r in graph["resources"] if r["type"] == resource_type]
    assert found, f"{graph['stack']}: no {resource_type}"
    return found


def test_every_stack_is_snapshotted_with_its_component_and_pinned_provider(
    stack_graphs: Graphs,
) -> None:
    assert sorted(stack_graphs) == catalogue.stack_names()
    for name, graph in stack_graphs.items():
        env, service, region = name.split("-")
        component_type = {
            "dm": "roomtrust:dm:DmRegion",
            "meeting": "roomtrust:meeting:MeetingRegion",
        }
        [component] = _of(graph, component_type[service])
        assert component["inputs"]["environment"] == env
        assert component["inputs"]["region"] == region
        assert component["parent"] is None
        provider_type = "pulumi:providers:" + ("azure-native" if service == "dm" else "aws")
        [provider] = _of(graph, provider_type)
        assert provider["parent"] == component["urn"]
        locations = DM_LOCATIONS[region] if service == "dm" else MEETING_AWS_REGIONS[region]
        custom = [r for r in graph["resources"] if r["custom"] and r is not provider]
        assert len(custom) > 10
        for resource in custom:
            assert resource["provider"] == provider["urn"], resource["urn"]
            assert resource["region"] in locations, resource["urn"]


def test_inputs_arrive_camel_cased_with_nested_values(stack_graphs: Graphs) -> None:
    [account] = _of(stack_graphs["staging-dm-au"], "azure-native:storage:StorageAccount")
    assert account["inputs"]["minimumTlsVersion"] == "TLS1_2"
    assert account["inputs"]["encryption"]["services"]["blob"]["enabled"] is True
    [db] = _of(stack_graphs["ci-meeting-sa"], "aws:rds/instance:Instance")
    assert db["inputs"]["backupRetentionPeriod"] == 7
    assert isinstance(db["inputs"]["backupRetentionPeriod"], int)


def test_children_name_their_component_parent(stack_graphs: Graphs) -> None:
    graph = stack_graphs["prod-meeting-asia"]
    services = {r["urn"]: r for r in _of(graph, "roomtrust:meeting:FargateService")}
    assert len(services) == 4  # signaling, relay, the PSTN and the interop gateways
    [bus] = _of(graph, "roomtrust:meeting:NatsBus")  # the replicas' NATS cluster
    tasks = _of(graph, "aws:ecs/taskDefinition:TaskDefinition")
    assert len(tasks) == 5
    for task in tasks:
        assert task["parent"] in {*services, bus["urn"]}
    [registry] = _of(graph, "aws:servicediscovery/service:Service")
    assert registry["parent"] == bus["urn"]


# In-process snapshots use meeting stacks only, so this process imports one cloud SDK.


def test_a_snapshot_is_repeatable_and_json(stack_graphs: Graphs) -> None:
    again = snapshot_stack("ci-meeting-eu")
    assert json.loads(json.dumps(again)) == stack_graphs["ci-meeting-eu"]


def test_stack_configuration_changes_the_graph(stack_graphs: Graphs) -> None:
    def counts(graph: dict[str, Any]) -> dict[str, int]:
        return {
            s["inputs"]["name"].rsplit("-", 1)[-1]: s["inputs"]["desiredCount"]
            for s in _of(graph, "aws:ecs/service:Service")
        }

    roles = ("signaling", "relay", "pstn", "interop")
    # the bus keeps its own size (three NATS tasks) whatever the services' count
    assert counts(stack_graphs["prod-meeting-na"]) == {**dict.fromkeys(roles, 3), "bus": 3}
    assert counts(stack_graphs["ci-meeting-na"]) == {**dict.fromkeys(roles, 2), "bus": 3}
    assert snapshot_stack("prod-meeting-na") == stack_graphs["prod-meeting-na"]


def test_secrets_are_kept_only_as_digests() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s3"}
    assert plain({"clientId": secret}) == {"clientId": redacted("s3")}
    assert "s3" not in redacted("s3")
    assert plain([1.0, 2.5, "x", None]) == [1, 2.5, "x", None]
