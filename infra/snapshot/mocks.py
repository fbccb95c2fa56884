"""A recording Pulumi mock engine: every registered resource with its inputs, parent and provider.

`RecordingMonitor` wraps Pulumi's `MockMonitor`: it sees each registration request (parent,
provider reference, custom or component) and the inputs the program gave, exactly as the engine
would receive them (camelCased). `RecordingMocks` answers registrations with the inputs echoed
back plus plausible ids and ARNs, and answers the few invokes the programs make.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

MOCK_ACCOUNT = "000000000000"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker key of a secret value
ARN_KINDS = {
    "aws:ecs/taskDefinition:TaskDefinition": ("ecs", "task-definition/{name}:1", "family"),
    "aws:lb/targetGroup:TargetGroup": ("elasticloadbalancing", "targetgroup/{name}/0", "name"),
    "aws:lb/loadBalancer:LoadBalancer": ("elasticloadbalancing", "loadbalancer/{name}/0", "name"),
    "aws:ecs/cluster:Cluster": ("ecs", "cluster/{name}", "name"),
}


def redacted(value: Any) -> str:
    """A secret stands in the graph as a digest: comparable between stacks, never readable."""
    digest = hashlib.sha256(repr(value).encode()).hexdigest()[:16]
    return f"secret:sha256:{digest}"


def plain(value: Any) -> Any:
    """The JSON-safe form of a deserialized input (integral floats back to ints, secrets hashed)."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return redacted(value.get("value"))
        return {str(k): plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    return str(value)


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs; keep each resource's inputs by (type, name)."""

    def __init__(self, region_hint: str = "mock-region-1") -> None:
        self.region_hint = region_hint
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = plain(args.inputs)
        with self._lock:
            self.inputs[(args.typ, args.name)] = inputs
        state = dict(inputs)
        resource_id = f"{args.name}-id"
        if args.typ.startswith("aws:"):
            module = args.typ.split(":")[1].split("/")[0]
            state.setdefault("name", args.name)
            service, path, key = ARN_KINDS.get(args.typ, (module, "{name}", "name"))
            resource = path.format(name=inputs.get(key) or args.name)
            state["arn"] = f"arn:aws:{service}:{self.region_hint}:{MOCK_ACCOUNT}:{resource}"
            if args.typ.startswith("aws:lb/loadBalancer"):
                state["dnsName"] = f"{args.name}.elb.amazonaws.com"
            if args.typ == "aws:rds/instance:Instance":
                identifier = inputs.get("identifier") or args.name
                state["address"] = f"{identifier}.c0mock0rds0.{self.region_hint}.rds.amazonaws.com"
        elif args.typ.startswith("azure-native:"):
            state.setdefault("name", args.name)
            resource_id = (
                f"/subscriptions/mock/resourceGroups/mock/providers/{args.typ}/{args.name}"
            )
            if args.typ == "azure-native:operationalinsights:Workspace":
                state["customerId"] = f"{args.name}-customer-id"
            if args.typ == "azure-native:network:VirtualNetwork":
                state["subnets"] = [
                    {**subnet, "id": f"{resource_id}/subnets/{subnet.get('name')}"}
                    for subnet in inputs.get("subnets", [])
                ]
            if args.typ == "azure-native:app:ContainerApp":
                state["latestRevisionFqdn"] = f"{args.name}.azurecontainerapps.io"
                identity = inputs.get("identity")
                if isinstance(identity, dict) and "userAssignedIdentities" in identity:
                    # given as a list of ids, answered as a map of id -> identity
                    ids = identity["userAssignedIdentities"] or []
                    state["identity"] = {
                        **identity,
                        "userAssignedIdentities": {ident: {} for ident in ids},
                    }
            if args.typ == "azure-native:app:ManagedEnvironment":
                state["defaultDomain"] = f"{args.name}.{self.region_hint}.azurecontainerapps.io"
            if args.typ == "azure-native:dbforpostgresql:Server":
                server = inputs.get("serverName") or args.name
                state["fullyQualifiedDomainName"] = f"{server}.postgres.database.azure.com"
            if args.typ == "azure-native:storage:StorageAccount":
                account = inputs.get("accountName") or args.name
                state["primaryEndpoints"] = {"blob": f"https://{account}.blob.core.windows.net/"}
            if args.typ == "azure-native:keyvault:Vault":
                vault = inputs.get("vaultName") or args.name
                properties = dict(inputs.get("properties") or {})
                state["properties"] = {
                    **properties,
                    "vaultUri": f"https://{vault}.vault.azure.net/",
                }
            if args.typ == "azure-native:managedidentity:UserAssignedIdentity":
                digest = hashlib.sha256(args.name.encode()).hexdigest()
                state["name"] = inputs.get("resourceName") or args.name
                state["principalId"] = f"{digest[:8]}-0000-4000-8000-{digest[8:20]}"
                state["clientId"] = f"{digest[20:28]}-0000-4000-8000-{digest[28:40]}"
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]]]:
        if args.token == "azure-native:operationalinsights:getSharedKeys":
            return {"primarySharedKey": "mock-key", "secondarySharedKey": "mock-key"}, []
        return {}, []


@contextmanager
def _thread_loop() -> Iterator[None]:
    """An event loop for an executor thread that has none, closed when the call returns.

    The mock monitor needs a loop on the calling thread; left to itself it leaves one open per
    executor thread, which the interpreter then fails to close cleanly at exit.
    """
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            yield
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    else:
        yield


class RecordingMonitor(MockMonitor):
    """Keeps, per URN, what the registration request said besides the inputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.registrations: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        with _thread_loop():
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        with self._lock:
            self.registrations.append(
                {
                    "urn": response.urn,
                    "type": request.type,
                    "name": request.name,
                    "custom": bool(request.custom),
                    "parent": request.parent or None,
                    "provider": request.provider.rsplit("::", 1)[0] if request.provider else None,
                    "id": response.id or None,
                }
            )
        return response

    def Invoke(self, request: Any) -> Any:
        with _thread_loop():
            return super().Invoke(request)  # type: ignore[no-untyped-call]
