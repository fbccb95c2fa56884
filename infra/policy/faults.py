"""Known-bad variants of a good graph: one or more per check, to show that each check can fail.

A fault takes a graph document and returns a broken deep copy. Tests and the compliance scenarios
apply them to real stack snapshots and expect the guarding check to fail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.policy import checks as c

Document = dict[str, Any]


def _first(document: Document, resource_type: str) -> dict[str, Any]:
    resource: dict[str, Any]
    for resource in document["resources"]:
        if resource["type"] == resource_type:
            resource.setdefault("inputs", {})
            return resource
    raise LookupError(f"{document.get('stack')}: no {resource_type} to break")


def _add(document: Document, resource: dict[str, Any]) -> None:
    document["resources"].append(resource)


def storage_without_tls12(d: Document) -> None:
    _first(d, c.AZ_STORAGE)["inputs"]["minimumTlsVersion"] = "TLS1_0"


def storage_without_tls_setting(d: Document) -> None:
    _first(d, c.AZ_STORAGE)["inputs"].pop("minimumTlsVersion", None)


def geo_replicated_storage(d: Document) -> None:
    _first(d, c.AZ_STORAGE)["inputs"]["sku"] = {"name": "Standard_RAGRS"}


def bucket_with_replication(d: Document) -> None:
    bucket = _first(d, c.AWS_BUCKET)
    _add(
        d,
        {
            "urn": bucket["urn"] + "-replication",
            "type": c.AWS_REPLICATION,
            "name": bucket["name"] + "-replication",
            "custom": True,
            "parent": bucket["parent"],
            "provider": bucket["provider"],
            "region": bucket["region"],
            "inputs": {
                "bucket": bucket["inputs"]["bucket"],
                "role": "arn:aws:iam::000000000000:role/replication",
                "rules": [
                    {
                        "status": "Enabled",
                        "destination": {"bucket": "arn:aws:s3:::copy-in-us-east-1"},
                    }
                ],
            },
        },
    )


def log_group_30_days(d: Document) -> None:
    _first(d, c.AWS_LOG_GROUP)["inputs"]["retentionInDays"] = 30


def workspace_without_retention(d: Document) -> None:
    _first(d, c.AZ_WORKSPACE)["inputs"].pop("retentionInDays", None)


def alb_with_old_tls_policy(d: Document) -> None:
    for listener in d["resources"]:
        if listener["type"] == c.AWS_LISTENER and listener["inputs"].get("protocol") == "HTTPS":
            listener["inputs"]["sslPolicy"] = "ELBSecurityPolicy-2016-08"
            return
    raise LookupError("no HTTPS listener to break")


def database_without_forced_tls(d: Document) -> None:
    group = _first(d, c.AWS_RDS_PARAMS)
    group["inputs"]["parameters"] = [
        p for p in group["inputs"]["parameters"] if p["name"] != "rds.force_ssl"
    ]


def flexible_server_without_forced_tls(d: Document) -> None:
    for config in d["resources"]:
        if (
            config["type"] == c.AZ_PG_CONFIG
            and config["inputs"].get("configurationName") == "require_secure_transport"
        ):
            config["inputs"]["value"] = "OFF"
            return
    raise LookupError("no require_secure_transport setting to break")


def unencrypted_database(d: Document) -> None:
    _first(d, c.AWS_RDS)["inputs"]["storageEncrypted"] = False


def bucket_without_kms(d: Document) -> None:
    d["resources"] = [r for r in d["resources"] if r["type"] != c.AWS_SSE]


def service_without_health_checks(d: Document) -> None:
    task = _first(d, c.AWS_TASK)
    containers = json.loads(task["inputs"]["containerDefinitions"])
    for container in containers:
        container.pop("healthCheck", None)
    task["inputs"]["containerDefinitions"] = json.dumps(containers)


def app_without_probes(d: Document) -> None:
    for container in _first(d, c.AZ_APP)["inputs"]["template"]["containers"]:
        container.pop("probes", None)


def single_task(d: Document) -> None:
    _first(d, c.AWS_ECS_SERVICE)["inputs"]["desiredCount"] = 1


def database_without_backups(d: Document) -> None:
    _first(d, c.AWS_RDS)["inputs"]["backupRetentionPeriod"] = 0


def flexible_server_without_backup(d: Document) -> None:
    _first(d, c.AZ_PG)["inputs"].pop("backup", None)


def provider_without_account_pin(d: Document) -> None:
    provider = _first(d, "pulumi:providers:aws")
    provider["inputs"].pop("allowedAccountIds", None)


def resource_in_us_region(d: Document) -> None:
    """An eu (or any non-NA) meeting stack that creates its bucket in us-east-1."""
    _first(d, c.AWS_BUCKET)["inputs"]["region"] = "us-east-1"


def second_provider_in_us(d: Document) -> None:
    provider = copy.deepcopy(_first(d, "pulumi:providers:aws"))
    provider["urn"] += "-us"
    provider["name"] += "-us"
    provider["inputs"]["region"] = "us-east-1"
    _add(d, provider)
    bucket = _first(d, c.AWS_BUCKET)
    bucket["provider"], bucket["region"] = provider["urn"], "us-east-1"


def dm_resource_in_us(d: Document) -> None:
    _first(d, c.AZ_STORAGE)["inputs"]["location"] = "eastus"


def ssh_open_to_internet(d: Document) -> None:
    group = _first(d, c.AWS_SG)
    group["inputs"]["ingress"].append(
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
    )


def management_port_on_nlb(d: Document) -> None:
    listener = copy.deepcopy(_first(d, c.AWS_LISTENER))
    listener["urn"] += "-ssh"
    listener["name"] += "-ssh"
    listener["inputs"].update({"protocol": "TCP", "port": 22})
    listener["inputs"].pop("sslPolicy", None)
    _add(d, listener)


def _named(document: Document, resource_type: str, suffix: str) -> dict[str, Any]:
    resource: dict[str, Any]
    for resource in document["resources"]:
        if resource["type"] == resource_type and str(resource.get("name", "")).endswith(suffix):
            resource.setdefault("inputs", {})
            return resource
    raise LookupError(f"{document.get('stack')}: no {resource_type} named *{suffix}")


def pstn_gateway_open_on_udp(d: Document) -> None:
    """The PSTN gateway's security group also opens a UDP port (from inside the VPC)."""
    group = _named(d, c.AWS_SG, "-pstn-sg")
    rule = {"protocol": "udp", "fromPort": 5060, "toPort": 5060, "cidrBlocks": ["10.0.0.0/8"]}
    group["inputs"]["ingress"].append(rule)


def interop_gateway_open_to_internet(d: Document) -> None:
    """The interop gateway's SIP TLS port is opened to the internet on its tasks directly."""
    group = _named(d, c.AWS_SG, "-interop-sg")
    for rule in group["inputs"]["ingress"]:
        rule["cidrBlocks"] = ["0.0.0.0/0"]


def interop_gateway_plain_sip(d: Document) -> None:
    """The interop gateway's security group opens plain SIP (5060) besides its TLS ports."""
    group = _named(d, c.AWS_SG, "-interop-sg")
    rule = {"protocol": "tcp", "fromPort": 5060, "toPort": 5060, "cidrBlocks": ["10.0.0.0/8"]}
    group["inputs"]["ingress"].append(rule)


def region_without_interop_gateway(d: Document) -> None:
    d["resources"] = [
        r
        for r in d["resources"]
        if not (
            r["type"] in (c.AWS_TASK, c.AWS_ECS_SERVICE)
            and str(get_input(r, "family", "name")).endswith("-interop")
        )
    ]


def get_input(resource: dict[str, Any], *keys: str) -> Any:
    inputs = resource.get("inputs") or {}
    return next((inputs[k] for k in keys if k in inputs), None)


def gateway_listener_in_plain_tcp(d: Document) -> None:
    listener = _named(d, c.AWS_LISTENER, "-gw-interop-5061")
    listener["inputs"]["protocol"] = "TCP"
    listener["inputs"].pop("sslPolicy", None)


def public_bucket(d: Document) -> None:
    block = _first(d, c.AWS_PUBLIC_BLOCK)
    block["inputs"]["restrictPublicBuckets"] = False


def _task_of(document: Document, role: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    task = _named(document, c.AWS_TASK, f"-{role}-task")
    return task, json.loads(task["inputs"]["containerDefinitions"])


def signaling_replicas_without_bus(d: Document) -> None:
    """Signaling runs several tasks, none given the bus: each owns the conferences joined on it."""
    task, containers = _task_of(d, "signaling")
    for container in containers:
        env = container.get("environment") or []
        container["environment"] = [e for e in env if e["name"] != "ROOMTRUST_BUS_URL"]
    task["inputs"]["containerDefinitions"] = json.dumps(containers)


def signaling_bus_url_elsewhere(d: Document) -> None:
    """Signaling is given a NATS URL that is not the region's bus (its Cloud Map name)."""
    task, containers = _task_of(d, "signaling")
    for container in containers:
        for variable in container.get("environment") or []:
            if variable["name"] == "ROOMTRUST_BUS_URL":
                variable["value"] = "nats://nats.example.com:4222"
    task["inputs"]["containerDefinitions"] = json.dumps(containers)


def region_without_bus(d: Document) -> None:
    """The bus's ECS service and task are gone (signaling keeps its URL: nothing answers it)."""
    d["resources"] = [
        r
        for r in d["resources"]
        if not (
            r["type"] in (c.AWS_TASK, c.AWS_ECS_SERVICE)
            and str(get_input(r, "family", "name")).endswith("-bus")
        )
    ]


def bus_open_to_internet(d: Document) -> None:
    """The bus's client port is opened to the internet besides signaling's security group."""
    group = _named(d, c.AWS_SG, "-bus-sg")
    rule = {"protocol": "tcp", "fromPort": 4222, "toPort": 4222, "cidrBlocks": ["0.0.0.0/0"]}
    group["inputs"]["ingress"].append(rule)


def bus_with_jetstream(d: Document) -> None:
    """The bus's NATS server runs with JetStream: what crosses it (chat) would be stored."""
    task, containers = _task_of(d, "bus")
    containers[0]["command"] = [*containers[0]["command"], "--jetstream"]
    task["inputs"]["containerDefinitions"] = json.dumps(containers)


@dataclass(frozen=True)
class Fault:
    name: str
    claim: str
    service: str  # the kind of stack it applies to: "dm" or "meeting"
    apply: Callable[[Document], None]

    def __call__(self, document: Document) -> Document:
        broken = copy.deepcopy(document)
        self.apply(broken)
        return broken


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("an eu stack that places a resource in a US region", "IN-01", "meeting", resource_in_us_region),
        Fault("a second provider in a US region", "IN-01", "meeting", second_provider_in_us),
        Fault("a DM storage account in a US location", "IN-01", "dm", dm_resource_in_us),
        Fault("a storage account without TLS 1.2", "IN-02", "dm", storage_without_tls12),
        Fault("a storage account with no TLS setting", "IN-02", "dm", storage_without_tls_setting),
        Fault("an ALB with an old TLS policy", "IN-02", "meeting", alb_with_old_tls_policy),
        Fault("a database without forced TLS", "IN-02", "meeting", database_without_forced_tls),
        Fault("a flexible server without forced TLS", "IN-02", "dm", flexible_server_without_forced_tls),
        Fault("an unencrypted database", "IN-03", "meeting", unencrypted_database),
        Fault("a bucket without SSE-KMS", "IN-03", "meeting", bucket_without_kms),
        Fault("a bucket with replication", "IN-04", "meeting", bucket_with_replication),
        Fault("a geo-replicated storage account", "IN-04", "dm", geo_replicated_storage),
        Fault("a log group with 30-day retention", "IN-05", "meeting", log_group_30_days),
        Fault("a log workspace without retention", "IN-05", "dm", workspace_without_retention),
        Fault("a provider not pinned to its account", "IN-06", "meeting", provider_without_account_pin),
        Fault("a service without health checks", "IN-07", "meeting", service_without_health_checks),
        Fault("a container app without probes", "IN-07", "dm", app_without_probes),
        Fault("a service with a single task", "IN-07", "meeting", single_task),
        Fault("signaling replicas without a bus URL", "IN-07", "meeting", signaling_replicas_without_bus),
        Fault("signaling given a bus other than the region's", "IN-07", "meeting", signaling_bus_url_elsewhere),
        Fault("a meeting region without its bus", "IN-07", "meeting", region_without_bus),
        Fault("a bus open to the internet", "IN-07", "meeting", bus_open_to_internet),
        Fault("a bus with JetStream", "IN-07", "meeting", bus_with_jetstream),
        Fault("a database without backups", "IN-08", "meeting", database_without_backups),
        Fault("a flexible server without backup settings", "IN-08", "dm", flexible_server_without_backup),
        Fault("SSH open to the internet", "MT-12", "meeting", ssh_open_to_internet),
        Fault("a management port on the NLB", "MT-12", "meeting", management_port_on_nlb),
        Fault("a bucket with public access allowed", "MT-16", "meeting", public_bucket),
        Fault("a PSTN gateway security group open on UDP", "MT-12", "meeting", pstn_gateway_open_on_udp),
        Fault("an interop gateway open to the internet", "MT-12", "meeting", interop_gateway_open_to_internet),
        Fault("an interop gateway that opens plain SIP", "MT-12", "meeting", interop_gateway_plain_sip),
        Fault("a meeting region without its interop gateway", "MT-12", "meeting", region_without_interop_gateway),
        Fault("a gateway listener in plain TCP", "IN-02", "meeting", gateway_listener_in_plain_tcp),
    )
}  # fmt: skip
