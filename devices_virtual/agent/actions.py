"""Actions the device agent asks its driver to perform. The agent never performs I/O itself.

`target` says whom an action talks to: "connectivity", "ntp", "proxy_test", "vendor" (the
preconfigured domains, DM-12) or "dm" (the device's DM server). While the DM connection is switched
off, no action with target "dm" is ever returned (DM-03).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HttpRequest:
    request_id: int
    method: str
    url: str
    target: str
    purpose: str
    json: dict[str, Any] | None = None
    mtls: bool = False
    bearer: str | None = None


@dataclass(frozen=True, slots=True)
class NtpQuery:
    """One SNTP request over UDP to `host` port 123."""

    request_id: int
    host: str
    target: str = "ntp"


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class StoreCredential:
    """Keep the certificate the DM service issued (beside the key the driver made). With
    `new_key`, the certificate is for the key of the last `NewKey`, which replaces the current
    key from now on (a renewal, or the first enrollment after a factory reset)."""

    device_id: str
    certificate_pem: str
    ca_pem: str
    target: str = "local"
    new_key: bool = False


@dataclass(frozen=True, slots=True)
class NewKey:
    """Make a new key pair and a CSR for it (the device's MAC and serial number), and keep the
    key beside the current one until a certificate for it is stored; the driver answers
    `KeyReady`. The private key never leaves the driver."""

    request_id: int
    target: str = "local"


@dataclass(frozen=True, slots=True)
class WipeIdentity:
    """Factory reset: delete the device's keys, CSR and certificate."""

    target: str = "local"


@dataclass(frozen=True, slots=True)
class ForgetCredential:
    """The certificate was revoked or refused: drop it and the connections built on it."""

    target: str = "local"


@dataclass(frozen=True, slots=True)
class OpenChannel:
    """Open the device's own outbound WSS command channel (mutual TLS)."""

    url: str
    target: str = "dm"


@dataclass(frozen=True, slots=True)
class SendChannel:
    message: dict[str, Any]
    target: str = "dm"


@dataclass(frozen=True, slots=True)
class CloseDmSession:
    """Close the command channel and every pooled connection to the DM server, locally."""

    target: str = "local"


@dataclass(frozen=True, slots=True)
class DownloadFile:
    """Fetch a file from the DM server over the device's mutual-TLS session; the driver answers
    with `DownloadDone` (the raw bytes) or `RequestFailed`."""

    request_id: int
    url: str
    target: str = "dm"
    purpose: str = "firmware"


@dataclass(frozen=True, slots=True)
class InstallImage:
    """Write a verified image to the inactive slot (`"a"` or `"b"`) of the device's flash; the
    driver answers with `ImageInstalled`. The agent has checked the signature already."""

    slot: str
    version: str
    size: int
    target: str = "local"


@dataclass(frozen=True, slots=True)
class Reboot:
    """Power-cycle: the driver feeds `PowerOn` again. The agent closes its DM session first."""

    target: str = "local"


Action = (
    HttpRequest
    | NtpQuery
    | StartTimer
    | CancelTimer
    | StoreCredential
    | NewKey
    | WipeIdentity
    | ForgetCredential
    | OpenChannel
    | SendChannel
    | CloseDmSession
    | DownloadFile
    | InstallImage
    | Reboot
)
