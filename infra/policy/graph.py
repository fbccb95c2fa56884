"""A read-only view of a resource graph, as snapshots write it and as the policy pack builds it.

A graph is a plain dict: `{"stack": ..., "resources": [{"urn", "type", "name", "custom", "parent",
"provider", "inputs", "region"}, ...]}`. Nothing here imports Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PROVIDER_PREFIX = "pulumi:providers:"
REGION_COMPONENTS = {
    "roomtrust:dm:DmRegion": "dm",
    "roomtrust:meeting:MeetingRegion": "meeting",
}


def get(props: Any, *path: str) -> Any:
    """`props[a][b]...`, or None when any step is missing."""
    value = props
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def decoded(value: Any) -> Any:
    """Provider inputs reach the engine as JSON strings (`'["123"]'`, `"true"`): decode them."""
    if isinstance(value, str) and (value.startswith(("[", "{")) or value in ("true", "false")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class Meta:
    """What the stack's region component says about the stack."""

    urn: str | None
    service: str | None
    cloud: str | None
    environment: str | None
    region: str | None
    media_ports: tuple[int, ...]


class Graph:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.resources: list[dict[str, Any]] = list(document.get("resources", []))
        self.by_urn = {r["urn"]: r for r in self.resources}

    @property
    def stack(self) -> str:
        return str(self.document.get("stack", "?"))

    def of_type(self, *types: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources if r["type"] in types)

    def custom(self) -> Iterator[dict[str, Any]]:
        """Cloud resources (not components, not providers)."""
        return (
            r
            for r in self.resources
            if r.get("custom", True) and not r["type"].startswith(PROVIDER_PREFIX)
        )

    def providers(self) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources if r["type"].startswith(PROVIDER_PREFIX))

    def provider_of(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        urn = resource.get("provider")
        return self.by_urn.get(urn) if urn else None

    def siblings(self, resource: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.resources
            if r["type"] == resource_type and r.get("parent") == resource.get("parent")
        ]

    def meta(self) -> Meta:
        components = [r for r in self.resources if r["type"] in REGION_COMPONENTS]
        if len(components) != 1:
            return Meta(None, None, None, None, None, ())
        c = components[0]
        inputs = c.get("inputs") or {}
        ports = inputs.get("mediaPorts") or []
        return Meta(
            c["urn"],
            REGION_COMPONENTS[c["type"]],
            inputs.get("cloud"),
            inputs.get("environment"),
            inputs.get("region"),
            tuple(int(p) for p in ports if isinstance(p, int | float | str) and str(p).isdigit()),
        )
