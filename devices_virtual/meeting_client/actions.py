"""Actions the meeting client asks its driver to perform, and what it shows its user.

HTTP requests and timers are the device agent's own types; the signaling socket has its own.
`Show` is what a screen would display (the recording notice, a chat line, the lobby, a removal):
drivers log it, tests assert it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devices_virtual.agent.actions import CancelTimer, HttpRequest, StartTimer


@dataclass(frozen=True, slots=True)
class OpenSocket:
    """Open the WSS signaling socket; `token` goes in the Authorization header (None: the room
    system's client certificate authenticates it)."""

    url: str
    token: str | None


@dataclass(frozen=True, slots=True)
class SendSocket:
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloseSocket:
    code: int = 1000


@dataclass(frozen=True, slots=True)
class StoreRoomCredential:
    """Keep the room-system certificate the meeting region issued at registration."""

    account_id: str
    certificate_pem: str
    ca_pem: str


@dataclass(frozen=True, slots=True)
class Show:
    kind: str
    text: str
    data: dict[str, Any] | None = None


ClientAction = (
    HttpRequest
    | StartTimer
    | CancelTimer
    | OpenSocket
    | SendSocket
    | CloseSocket
    | StoreRoomCredential
    | Show
)
