"""The targets a compliance run checks, behind one interface that the steps call.

- `local`: the local stack of `.roomtrust/stack.json` (started or reused by `roomtrust comply`);
- `url`: a deployed region, described by a target file with its endpoints and credentials;
- `graph`: Pulumi resource-graph snapshots (JSON files, or every stack of infra/stacks snapshotted
  under Pulumi mocks);
- `sim`: simulation result records (JSON files).

A target is written to a JSON spec for the pytest process; `load_target` reads it back. A target
file for `url` looks like:

    {"kind": "url", "name": "eu-production",
     "endpoints": [{"service": "dm", "region": "eu", "url": "https://dm.eu.example:443",
                    "ca_file": "eu-ca.pem"}],
     "credentials": {"admin_email": "...", "admin_password": "..."}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from protocol.stack import Stack, read_stack

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = Path(".roomtrust")
DEFAULT_SIM = ROOT / "reports" / "out" / "sim"


class TargetError(ValueError):
    """A target spec or target file that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class TlsEndpoint:
    service: str
    region: str
    url: str
    host: str
    port: int
    ca_file: Path | None

    @property
    def name(self) -> str:
        return f"{self.service}/{self.region} {self.host}:{self.port}"


def endpoint_from_url(service: str, region: str, url: str, ca_file: str | None) -> TlsEndpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "wss") or not parts.hostname:
        raise TargetError(f"endpoint {service}/{region}: url {url!r} is not https:// or wss://")
    port = parts.port or 443
    return TlsEndpoint(
        service, region, url, parts.hostname, port, Path(ca_file) if ca_file else None
    )


@dataclass
class Target:
    """What every step may ask of a target; each kind fills in what it has."""

    kind: str
    name: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def server_control(self) -> bool:
        """Whether steps may use the target's clocks, processes and stores."""
        return self.kind == "local"

    def endpoints(self, service: str | None = None) -> list[TlsEndpoint]:
        """Every TLS endpoint of the target (optionally of one service)."""
        return []

    def stack(self) -> Stack:
        raise TargetError(f"the {self.kind} target has no local stack")

    def credentials(self) -> dict[str, str]:
        return dict(self.spec.get("credentials", {}))

    def graph_snapshots(self) -> list[dict[str, Any]]:
        raise TargetError(f"the {self.kind} target has no infrastructure graph")

    def sim_results(self) -> list[dict[str, Any]]:
        raise TargetError(f"the {self.kind} target has no simulation results")

    def to_spec(self) -> dict[str, Any]:
        return {**self.spec, "kind": self.kind, "name": self.name}


def _stack_endpoints(stack: Stack) -> list[TlsEndpoint]:
    """Every https/wss URL a region publishes (`url`, and any other `*_url` of its entry)."""
    return [
        endpoint_from_url(ep.service, ep.region, url, str(ep.ca_file))
        for ep in stack.endpoints()
        for _key, url in sorted(ep.urls.items())
        if url.startswith(("https", "wss"))
    ]


class LocalTarget(Target):
    def __init__(self, home: Path = DEFAULT_HOME, stack: Stack | None = None) -> None:
        super().__init__("local", "local", {"home": str(home)})
        self.home = home
        self._stack = stack

    def stack(self) -> Stack:
        if self._stack is None:
            self._stack = read_stack(self.home.resolve())
        return self._stack

    def endpoints(self, service: str | None = None) -> list[TlsEndpoint]:
        return [e for e in _stack_endpoints(self.stack()) if service in (None, e.service)]


class UrlTarget(Target):
    def endpoints(self, service: str | None = None) -> list[TlsEndpoint]:
        return [
            endpoint_from_url(e["service"], e["region"], e["url"], e.get("ca_file"))
            for e in self.spec.get("endpoints", [])
            if service in (None, e["service"])
        ]


def _json_records(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path] if path.exists() else []
    records = []
    for file in files:
        data = json.loads(file.read_text())
        items = data if isinstance(data, list) else [data]
        for item in items:
            if isinstance(item, dict):
                records.append({"source": str(file), **item})
    return records


class GraphTarget(Target):
    """Stack graphs (`{"stack": ..., "resources": [...]}`): read from the JSON files that
    `roomtrust infra graph STACK --out FILE` writes, or, without `snapshots`, taken from every
    stack of infra/stacks under Pulumi mocks (`infra.snapshot.all_stack_graphs`)."""

    def graph_snapshots(self) -> list[dict[str, Any]]:
        where = self.spec.get("snapshots")
        if where:
            return _json_records(Path(where))
        from infra.snapshot import all_stack_graphs

        return [{"source": f"snapshot of {name}", **g} for name, g in all_stack_graphs().items()]


class SimTarget(Target):
    def sim_results(self) -> list[dict[str, Any]]:
        return _json_records(Path(self.spec.get("results", DEFAULT_SIM)))


def target_from_spec(spec: dict[str, Any]) -> Target:
    kind = spec.get("kind")
    name = str(spec.get("name") or kind)
    if kind == "local":
        return LocalTarget(Path(spec.get("home", DEFAULT_HOME)))
    if kind == "url":
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            raise TargetError("url target: field 'endpoints' must list at least one endpoint")
        for i, e in enumerate(endpoints):
            missing = [k for k in ("service", "region", "url") if not e.get(k)]
            if missing:
                raise TargetError(f"url target: endpoints[{i}] lacks {', '.join(missing)}")
            endpoint_from_url(e["service"], e["region"], e["url"], e.get("ca_file"))
        return UrlTarget("url", name, dict(spec))
    if kind == "graph":
        return GraphTarget("graph", name, dict(spec))
    if kind == "sim":
        return SimTarget("sim", name, dict(spec))
    raise TargetError(f"field 'kind': {kind!r} is not one of local, url, graph, sim")


def parse_target(value: str, home: Path = DEFAULT_HOME) -> Target:
    """`--target` as given on the command line: `local`, `graph[:DIR]`, `sim[:DIR]`, or a file."""
    kind, _, where = value.partition(":")
    if kind == "local":
        return LocalTarget(Path(where) if where else home)
    if kind == "graph":
        return GraphTarget("graph", "graph", {"snapshots": where} if where else {})
    if kind == "sim":
        return SimTarget("sim", "sim", {"results": where or str(DEFAULT_SIM)})
    path = Path(value)
    if not path.is_file():
        raise TargetError(f"--target {value!r}: not local, graph, sim, nor a target file")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TargetError(f"--target {value}: not JSON ({exc})") from exc
    if isinstance(spec.get("endpoints"), list):
        for e in spec["endpoints"]:
            if e.get("ca_file") and not Path(e["ca_file"]).is_absolute():
                e["ca_file"] = str((path.parent / e["ca_file"]).resolve())
    return target_from_spec(spec)


def write_spec(target: Target, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(target.to_spec(), indent=2))
    return path


def load_target(path: Path) -> Target:
    return target_from_spec(json.loads(path.read_text()))
