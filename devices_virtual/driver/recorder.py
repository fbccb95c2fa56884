"""A record of every outbound connection and request the virtual devices make (host as the device
named it, resolved port, protocol, purpose), for the wire checks of DM-03 and DM-12."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Connection:
    at: float
    device: str
    host: str
    port: int
    protocol: str
    target: str
    purpose: str
    direction: str = "outbound"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.connections: list[Connection] = []
        self.count = 0

    def record(self, connection: Connection) -> None:
        self.count += 1
        if self.keep:
            self.connections.append(connection)

    def of(self, devices: Iterable[str]) -> list[Connection]:
        wanted = set(devices)
        return [c for c in self.connections if c.device in wanted]

    def to_dm(self, devices: Iterable[str], since: float = float("-inf")) -> list[Connection]:
        return [c for c in self.of(devices) if c.target == "dm" and c.at >= since]
