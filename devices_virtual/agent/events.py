"""Events fed to the device agent. Every event carries `now`: seconds on the driver's clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """What the device knows of its network; only DM-09 fields are ever reported from it."""

    network_type: str = "ethernet"
    ipv4_address: str = "192.0.2.10"
    ipv6_address: str | None = None
    network_id: str = "lan-1"


@dataclass(frozen=True, slots=True)
class PowerOn:
    now: float


@dataclass(frozen=True, slots=True)
class NetworkChanged:
    now: float
    network: NetworkInfo


@dataclass(frozen=True, slots=True)
class TimerFired:
    now: float
    name: str


@dataclass(frozen=True, slots=True)
class HttpResponse:
    now: float
    request_id: int
    status: int
    body: Any = None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A request (HTTP or NTP) got no answer: refused connection, timeout, TLS failure."""

    now: float
    request_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class NtpReply:
    now: float
    request_id: int
    server_time: float


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    now: float


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    now: float
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    now: float
    code: int


@dataclass(frozen=True, slots=True)
class DmToggled:
    """The person at the device switched the DM connection on or off (DM-03)."""

    now: float
    enabled: bool


@dataclass(frozen=True, slots=True)
class FaultInjected:
    now: float
    component: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultCleared:
    now: float
    component: str


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    """The meeting client joined or left a call; it changes the reported device status."""

    now: float
    in_call: bool


@dataclass(frozen=True, slots=True)
class UserOpenedLink:
    """A person at the device opened the vendor web or support link."""

    now: float
    link: str


@dataclass(frozen=True, slots=True)
class DownloadDone:
    """The answer to a `DownloadFile` action: the status and the raw bytes of the body."""

    now: float
    request_id: int
    status: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ImageInstalled:
    """The driver finished (or failed) an `InstallImage` action."""

    now: float
    version: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class KeyReady:
    """The answer to a `NewKey` action: the CSR of the new key."""

    now: float
    request_id: int
    csr_pem: str


@dataclass(frozen=True, slots=True)
class ProxyTestToggled:
    now: float
    enabled: bool


Event = (
    PowerOn
    | NetworkChanged
    | TimerFired
    | HttpResponse
    | RequestFailed
    | NtpReply
    | ChannelOpened
    | ChannelMessage
    | ChannelClosed
    | DmToggled
    | FaultInjected
    | FaultCleared
    | CallStateChanged
    | UserOpenedLink
    | DownloadDone
    | ImageInstalled
    | KeyReady
    | ProxyTestToggled
)
