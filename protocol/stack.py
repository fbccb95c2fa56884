"""The stack description (`stack.json`): where each service region of a running stack listens.

The local launcher (`roomtrust.stack`) writes it into the stack's home; every tool that talks to a
running stack reads it: the CLIs, the fleet driver, the load driver, the test harness. Each region
is an `Endpoint` (`stack.endpoint("dm", "us").url`, `.ca_file`); a meeting region may also have
media relays and a PSTN gateway. The JSON layout is:

    {"home": "...", "schema_prefix": "...", "database_url": "postgresql+psycopg://... (or none)",
     "services": {"dm": {"us": {"url": "https://127.0.0.1:PORT", "port": PORT,
                                "ca_file": ".../ca.pem", "pid": 123, "module": "...", "log": "..."}}},
     "relays": {"sa": {"relay-1": {"pid": 1, "control_url": "...", "media_port": 2, "log": "..."}}},
     "pstn": {"sa": {"pid": 1, "control_url": "...", "log": "..."}},
     "replicas": {"dm": {"us": [{"name": "r1", "pid": 1, "port": 2, "url": "...", "log": "..."}]}},
     "balancers": {"dm": {"us": {"pid": 1, "port": 2, "url": "...", "config": "...",
                                 "stats_socket": "...", "log": "..."}}},
     "interop": {"na": {"pid": 1, "sip_port": 2, "h323_port": 3, "log": "..."}},
     "bus": {"pid": 1, "url": "nats://127.0.0.1:PORT", "monitor_url": "http://...", "log": "..."}}

A region that runs as replicas (`roomtrust up --replicas N`) lists them under `replicas`, and its
endpoint is its balancer (also under `balancers`): clients reach the region only through it.
Replicated meeting regions also have their interop gateway (`interop`) and share one NATS server
(`bus`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_FILE = "stack.json"


class StackError(RuntimeError):
    """No stack description, or none of the region asked for; the message says which."""


@dataclass(frozen=True)
class Endpoint:
    """One service region: its HTTPS URL, the CA bundle that checks its certificate, its process.
    A region may publish more URLs (any other `*_url` key of its entry, e.g. a `signaling_url`)."""

    service: str
    region: str
    url: str
    ca_file: Path
    pid: int = 0
    port: int = 0
    module: str = ""
    log: str = ""
    other_urls: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def urls(self) -> dict[str, str]:
        """Every URL the region publishes, by its key (`url` first)."""
        return {"url": self.url, **self.other_urls}

    @classmethod
    def from_json(cls, service: str, region: str, data: dict[str, Any]) -> Endpoint:
        return cls(
            service,
            region,
            str(data["url"]),
            Path(data["ca_file"]),
            int(data.get("pid", 0)),
            int(data.get("port", 0)),
            str(data.get("module", "")),
            str(data.get("log", "")),
            {k: str(v) for k, v in data.items() if k.endswith("_url")},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "ca_file": str(self.ca_file), "pid": self.pid}
        data.update(self.other_urls)
        if self.port:
            data["port"] = self.port
        if self.module:
            data["module"] = self.module
        if self.log:
            data["log"] = self.log
        return data


@dataclass(frozen=True)
class Relay:
    """A media relay of a meeting region."""

    region: str
    name: str
    pid: int
    control_url: str
    media_port: int
    log: str = ""

    @classmethod
    def from_json(cls, region: str, name: str, data: dict[str, Any]) -> Relay:
        return cls(
            region,
            name,
            int(data["pid"]),
            str(data["control_url"]),
            int(data["media_port"]),
            str(data.get("log", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "control_url": self.control_url,
            "media_port": self.media_port,
            "log": self.log,
        }


@dataclass(frozen=True)
class Gateway:
    """The PSTN gateway of a meeting region."""

    region: str
    pid: int
    control_url: str
    log: str = ""

    @classmethod
    def from_json(cls, region: str, data: dict[str, Any]) -> Gateway:
        return cls(region, int(data["pid"]), str(data["control_url"]), str(data.get("log", "")))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "control_url": self.control_url, "log": self.log}


@dataclass(frozen=True)
class InteropGateway:
    """The SIP/H.323 interop gateway of a meeting region."""

    region: str
    pid: int
    sip_port: int
    h323_port: int
    log: str = ""

    @classmethod
    def from_json(cls, region: str, data: dict[str, Any]) -> InteropGateway:
        return cls(
            region,
            int(data["pid"]),
            int(data["sip_port"]),
            int(data["h323_port"]),
            str(data.get("log", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "sip_port": self.sip_port,
            "h323_port": self.h323_port,
            "log": self.log,
        }


@dataclass(frozen=True)
class MessageBus:
    """The NATS server between a stack's meeting replicas: its client URL, its monitoring URL
    (`/healthz`), its process and log."""

    pid: int
    url: str
    monitor_url: str
    log: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageBus:
        return cls(
            int(data["pid"]), str(data["url"]), str(data["monitor_url"]), str(data.get("log", ""))
        )

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "url": self.url, "monitor_url": self.monitor_url, "log": self.log}


@dataclass(frozen=True)
class Replica:
    """One process of a region that runs as replicas behind a balancer."""

    service: str
    region: str
    name: str
    pid: int
    port: int
    url: str
    log: str = ""

    @classmethod
    def from_json(cls, service: str, region: str, data: dict[str, Any]) -> Replica:
        return cls(
            service,
            region,
            str(data["name"]),
            int(data["pid"]),
            int(data["port"]),
            str(data["url"]),
            str(data.get("log", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "log": self.log,
        }


@dataclass(frozen=True)
class LoadBalancer:
    """The balancer in front of a region's replicas: where it listens, its configuration and the
    stats socket that tells which replicas are in rotation."""

    service: str
    region: str
    pid: int
    port: int
    url: str
    config: str
    stats_socket: str
    log: str = ""

    @classmethod
    def from_json(cls, service: str, region: str, data: dict[str, Any]) -> LoadBalancer:
        return cls(
            service,
            region,
            int(data["pid"]),
            int(data["port"]),
            str(data["url"]),
            str(data["config"]),
            str(data["stats_socket"]),
            str(data.get("log", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "config": self.config,
            "stats_socket": self.stats_socket,
            "log": self.log,
        }


@dataclass
class Stack:
    """A running stack: its home, its database schema prefix, and every process it started."""

    home: Path
    schema_prefix: str = ""
    services: dict[str, dict[str, Endpoint]] = field(default_factory=dict)
    relays: dict[str, dict[str, Relay]] = field(default_factory=dict)
    pstn: dict[str, Gateway] = field(default_factory=dict)
    replicas: dict[str, dict[str, list[Replica]]] = field(default_factory=dict)
    balancers: dict[str, dict[str, LoadBalancer]] = field(default_factory=dict)
    database_url: str = ""  # the PostgreSQL database of the regions' stores ("": SQLite files)
    interop: dict[str, InteropGateway] = field(default_factory=dict)
    bus: MessageBus | None = None

    def endpoint(self, service: str, region: str) -> Endpoint:
        """The region of the service; a StackError names what the stack has instead."""
        regions = self.services.get(service)
        if regions is None:
            raise StackError(
                f"the stack at {self.home} runs no {service} service "
                f"(it runs {', '.join(self.services) or 'nothing'})"
            )
        try:
            return regions[region]
        except KeyError:
            raise StackError(
                f"the stack at {self.home} has no {service} region {region!r} "
                f"(it has {', '.join(regions) or 'none'})"
            ) from None

    def regions(self, service: str) -> tuple[str, ...]:
        """The regions of a service the stack runs (none when it does not run the service)."""
        return tuple(self.services.get(service, {}))

    def endpoints(self) -> list[Endpoint]:
        """Every service region, service by service."""
        return [ep for regions in self.services.values() for ep in regions.values()]

    def add(self, endpoint: Endpoint) -> None:
        """Add the region, or replace it (a restarted region gets a new process)."""
        self.services.setdefault(endpoint.service, {})[endpoint.region] = endpoint

    def add_replicated(
        self, endpoint: Endpoint, replicas: list[Replica], balancer: LoadBalancer
    ) -> None:
        """Add a region that runs as replicas: its endpoint is the balancer's."""
        self.add(endpoint)
        self.replicas.setdefault(endpoint.service, {})[endpoint.region] = list(replicas)
        self.balancers.setdefault(endpoint.service, {})[endpoint.region] = balancer

    def replicas_of(self, service: str, region: str) -> list[Replica]:
        """The replicas of a region (none when it runs as one process)."""
        return list(self.replicas.get(service, {}).get(region, []))

    def all_replicas(self) -> list[Replica]:
        return [r for regions in self.replicas.values() for rs in regions.values() for r in rs]

    def all_balancers(self) -> list[LoadBalancer]:
        return [b for regions in self.balancers.values() for b in regions.values()]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stack:
        try:
            return cls(
                Path(data["home"]),
                str(data.get("schema_prefix", "")),
                {
                    service: {r: Endpoint.from_json(service, r, e) for r, e in regions.items()}
                    for service, regions in data.get("services", {}).items()
                },
                {
                    region: {n: Relay.from_json(region, n, e) for n, e in relays.items()}
                    for region, relays in data.get("relays", {}).items()
                },
                {r: Gateway.from_json(r, e) for r, e in data.get("pstn", {}).items()},
                {
                    service: {
                        r: [Replica.from_json(service, r, e) for e in entries]
                        for r, entries in regions.items()
                    }
                    for service, regions in data.get("replicas", {}).items()
                },
                {
                    service: {r: LoadBalancer.from_json(service, r, e) for r, e in regions.items()}
                    for service, regions in data.get("balancers", {}).items()
                },
                str(data.get("database_url", "")),
                {r: InteropGateway.from_json(r, e) for r, e in data.get("interop", {}).items()},
                MessageBus.from_json(data["bus"]) if data.get("bus") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StackError(f"not a stack description: {exc!r}") from exc

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "home": str(self.home),
            "schema_prefix": self.schema_prefix,
            "services": {
                service: {r: ep.to_json() for r, ep in regions.items()}
                for service, regions in self.services.items()
            },
        }
        if self.relays or "meeting" in self.services:
            data["relays"] = {
                region: {n: relay.to_json() for n, relay in relays.items()}
                for region, relays in self.relays.items()
            }
        if self.pstn or "meeting" in self.services:
            data["pstn"] = {r: gateway.to_json() for r, gateway in self.pstn.items()}
        if self.database_url:
            data["database_url"] = self.database_url
        if self.replicas:
            data["replicas"] = {
                service: {r: [e.to_json() for e in entries] for r, entries in regions.items()}
                for service, regions in self.replicas.items()
            }
            data["balancers"] = {
                service: {r: b.to_json() for r, b in regions.items()}
                for service, regions in self.balancers.items()
            }
        if self.interop:
            data["interop"] = {r: gateway.to_json() for r, gateway in self.interop.items()}
        if self.bus is not None:
            data["bus"] = self.bus.to_json()
        return data


def stack_file(home: Path) -> Path:
    return home / STACK_FILE


def read_stack(home: Path) -> Stack:
    """The description of the stack running in `home` (a StackError when there is none)."""
    path = stack_file(home)
    if not path.exists():
        raise StackError(f"no local stack at {home} (run `roomtrust up`)")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise StackError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise StackError(f"{path}: not a stack description")
    return Stack.from_json(data)


def write_stack(stack: Stack) -> Path:
    """Write stack.json into the stack's home, atomically; returns its path."""
    path = stack_file(stack.home)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stack.to_json(), indent=2))
    tmp.replace(path)
    return path
