"""Events fed to the meeting client: answers from the network and the intents of the person (or
the scenario) using it. Every event carries `now`, seconds on the driver's clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Start:
    now: float


@dataclass(frozen=True, slots=True)
class Stop:
    now: float


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    now: float
    request_id: int
    status: int
    body: Any = None


@dataclass(frozen=True, slots=True)
class HttpFailed:
    now: float
    request_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SocketOpened:
    now: float


@dataclass(frozen=True, slots=True)
class SocketMessage:
    now: float
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SocketClosed:
    now: float
    code: int


@dataclass(frozen=True, slots=True)
class TimerDue:
    now: float
    name: str


@dataclass(frozen=True, slots=True)
class CreateConference:
    """Create a conference and join it as its owner."""

    now: float
    title: str
    kind: str = "one_off"
    password: str | None = None
    locked: bool = False
    escalation: bool = False
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class JoinConference:
    now: float
    conference_id: str
    password: str | None = None


@dataclass(frozen=True, slots=True)
class SendChat:
    now: float
    text: str
    to: str | None = None


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderator's decision: admit/reject a lobby member, mute/remove a participant or "all",
    lock the conference, start/stop recording, end the conference."""

    now: float
    action: str
    target: str | None = None


@dataclass(frozen=True, slots=True)
class SetMedia:
    now: float
    audio: bool | None = None
    video: bool | None = None


@dataclass(frozen=True, slots=True)
class LeaveConference:
    now: float


ClientEvent = (
    Start
    | Stop
    | HttpAnswer
    | HttpFailed
    | SocketOpened
    | SocketMessage
    | SocketClosed
    | TimerDue
    | CreateConference
    | JoinConference
    | SendChat
    | Moderate
    | SetMedia
    | LeaveConference
)
