"""The local resolver table: preconfigured domains map to loopback stand-ins; the DM server
address (already a loopback address) passes through. Any other name does not resolve."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


class UnknownHost(LookupError):
    pass


@dataclass
class Resolver:
    # (host, protocol) -> (address, port); protocol is "http", "https" or "ntp"
    table: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def add(self, host: str, protocol: str, port: int, address: str = "127.0.0.1") -> None:
        self.table[(host, protocol)] = (address, port)

    def resolve(self, host: str, protocol: str, port: int | None = None) -> tuple[str, int]:
        try:
            if ipaddress.ip_address(host).is_loopback and port is not None:
                return host, port
        except ValueError:
            pass
        try:
            return self.table[(host, protocol)]
        except KeyError:
            raise UnknownHost(f"{host} ({protocol}) is not in the resolver table") from None
