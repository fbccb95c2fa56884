"""The events a conference session takes and the actions it returns (see `session.py`).

Events carry what the session cannot know by itself and must not fetch: the time, identifiers the
driver minted, the enterprise's switches and the caller's current permissions. Actions say what the
driver is to do, in order; the session itself never sends, stores or keys anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.meeting.domain.legs import LegKind
from services.meeting.domain.lobby import Admit, Close, Leave, Reject, Send

# -- events ------------------------------------------------------------------------------------
# Admit, Reject and Leave are the lobby's own events, taken as they are.


@dataclass(frozen=True)
class Join:
    """A connection asks to enter; the conference's owner is its moderator, anyone else knocks
    when the conference is locked or uses call escalation."""

    participant_id: str
    account_id: str
    display_name: str
    permissions: frozenset[str] = frozenset()
    leg: LegKind = LegKind.CLIENT


@dataclass(frozen=True)
class Lock:
    """A moderator locks or unlocks the conference from inside the call (the lock is persisted)."""

    moderator_id: str
    locked: bool


@dataclass(frozen=True)
class Reconfigure:
    """An administrator changed the lock or escalation through the API (already persisted there).
    `None` keeps a setting as it is."""

    locked: bool | None = None
    escalation: bool | None = None


@dataclass(frozen=True)
class Chat:
    participant_id: str
    text: object
    to: object
    chat_enabled: bool
    at: dt.datetime


@dataclass(frozen=True)
class Mute:
    moderator_id: str
    target: str  # a participant ID, or "all"


@dataclass(frozen=True)
class Remove:
    moderator_id: str
    target: str  # a participant ID, or "all"


@dataclass(frozen=True)
class SetMedia:
    """A participant turns its own audio or video off or on (`None` leaves it)."""

    participant_id: str
    audio: bool | None
    video: bool | None


@dataclass(frozen=True)
class RecordStart:
    participant_id: str
    recording_id: str  # minted by the driver
    permissions: frozenset[str]  # the recorder's permissions now
    recording_enabled: bool
    at: dt.datetime


@dataclass(frozen=True)
class RecordStop:
    participant_id: str
    at: dt.datetime


@dataclass(frozen=True)
class StreamStart:
    participant_id: str
    permissions: frozenset[str]
    streaming_enabled: bool
    at: dt.datetime


@dataclass(frozen=True)
class StreamStop:
    participant_id: str
    permissions: frozenset[str]
    streaming_enabled: bool
    at: dt.datetime


@dataclass(frozen=True)
class End:
    """A moderator ends the conference for everyone."""

    moderator_id: str


@dataclass(frozen=True)
class Terminate:
    """The conference is ended or deleted through the API (authorised there)."""


@dataclass(frozen=True)
class LegOpened:
    """The driver's answer to `OpenLeg`: the CDR leg's row, to close when the participant goes."""

    participant_id: str
    leg_id: int


Event = (
    Join
    | Admit
    | Reject
    | Leave
    | Lock
    | Reconfigure
    | Chat
    | Mute
    | Remove
    | SetMedia
    | RecordStart
    | RecordStop
    | StreamStart
    | StreamStop
    | End
    | Terminate
    | LegOpened
)

# -- actions -----------------------------------------------------------------------------------
# Send (a message to a participant) and Close (its connection) are the lobby's own actions.


@dataclass(frozen=True)
class PersistLock:
    conference_id: str
    locked: bool


@dataclass(frozen=True)
class IssueKeys:
    """Hand the admitted participant its media keys (and only an admitted one)."""

    participant_id: str


@dataclass(frozen=True)
class WithdrawKeys:
    """Take the participant off the relay; with `rekey`, the others get new keys."""

    participant_id: str
    rekey: bool


@dataclass(frozen=True)
class OpenCall:
    """The first admission opens the conference's call record."""

    call_id: str
    conference_id: str
    enterprise_id: str


@dataclass(frozen=True)
class OpenLeg:
    """Open a CDR leg; the driver answers with `LegOpened`."""

    call_id: str
    participant_id: str
    account_id: str
    encrypted: bool
    transport: str


@dataclass(frozen=True)
class CloseLeg:
    leg_id: int


@dataclass(frozen=True)
class CloseCall:
    """Close the call record and every leg still open in it."""

    call_id: str


@dataclass(frozen=True)
class StartRecording:
    recording_id: str
    conference_id: str
    recorder_id: str
    participant_account_ids: tuple[str, ...]


@dataclass(frozen=True)
class AddRecordingParticipant:
    recording_id: str
    account_id: str


@dataclass(frozen=True)
class StopRecording:
    recording_id: str


@dataclass(frozen=True)
class FinishConference:
    """The session is over: a one-off conference is deleted, and the driver drops the session."""

    conference_id: str


Action = (
    Send
    | Close
    | PersistLock
    | IssueKeys
    | WithdrawKeys
    | OpenCall
    | OpenLeg
    | CloseLeg
    | CloseCall
    | StartRecording
    | AddRecordingParticipant
    | StopRecording
    | FinishConference
)

__all__ = [
    "Action",
    "AddRecordingParticipant",
    "Admit",
    "Chat",
    "Close",
    "CloseCall",
    "CloseLeg",
    "End",
    "Event",
    "FinishConference",
    "IssueKeys",
    "Join",
    "Leave",
    "LegOpened",
    "Lock",
    "Mute",
    "OpenCall",
    "OpenLeg",
    "PersistLock",
    "Reconfigure",
    "RecordStart",
    "RecordStop",
    "Reject",
    "Remove",
    "Send",
    "SetMedia",
    "StartRecording",
    "StopRecording",
    "StreamStart",
    "StreamStop",
    "Terminate",
    "WithdrawKeys",
]
