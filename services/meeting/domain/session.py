"""`ConferenceSession`: the rules of one live conference as a sans-IO state machine.

It holds the lobby and roster (`lobby.Lobby`), chat (`chat.ChatRoom`), moderation, the recording
and streaming rules (`notices`), the leg kind of each participant (`legs`) and the CDR call and legs
it opened. Feed it events (`session_io`) with `handle()`; it returns the actions to carry out, in
order, or raises a `DomainError` and changes nothing when the event is not allowed. It touches no
socket, clock, database or file: the driver (`services.meeting.api.signaling`) does.

Everything but chat can be written down and rebuilt (`snapshot()` and `restore()`), so a session
can outlive the process that runs it. Chat stays in memory only (MT-18): a rebuilt session starts
with an empty chat history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, assert_never

from protocol import signaling as wire
from services.common.errors import Forbidden
from services.meeting.domain import lobby as lb
from services.meeting.domain import moderation, notices
from services.meeting.domain.chat import ChatRoom
from services.meeting.domain.legs import LegKind, terms
from services.meeting.domain.lobby import Close, Lobby, Participant, Send
from services.meeting.domain.session_io import (
    Action,
    AddRecordingParticipant,
    Admit,
    Chat,
    CloseCall,
    CloseLeg,
    End,
    Event,
    FinishConference,
    IssueKeys,
    Join,
    Leave,
    LegOpened,
    Lock,
    Mute,
    OpenCall,
    OpenLeg,
    PersistLock,
    Reconfigure,
    RecordStart,
    RecordStop,
    Reject,
    Remove,
    SetMedia,
    StartRecording,
    StopRecording,
    StreamStart,
    StreamStop,
    Terminate,
    WithdrawKeys,
)

CLOSE_ENDED = wire.SignalingClose.ENDED
SNAPSHOT_VERSION = 1


@dataclass
class ConferenceSession:
    conference_id: str
    enterprise_id: str
    owner_id: str  # the account that created the conference: its moderator
    call_id: str  # the CDR call record this session opens at its first admission
    lobby: Lobby
    chat: ChatRoom = field(default_factory=ChatRoom)
    kinds: dict[str, LegKind] = field(default_factory=dict)  # of those admitted or waiting
    legs: dict[str, int] = field(default_factory=dict)  # participant -> open CDR leg
    call_open: bool = False
    recording: notices.Recording | None = None
    streaming_notice: wire.Notice | None = None
    ended: bool = False

    @classmethod
    def open(
        cls,
        conference_id: str,
        enterprise_id: str,
        owner_id: str,
        *,
        call_id: str,
        locked: bool = False,
        escalation: bool = False,
    ) -> ConferenceSession:
        lobby = Lobby(conference_id, locked=locked, escalation=escalation)
        return cls(conference_id, enterprise_id, owner_id, call_id, lobby)

    # -- queries ----------------------------------------------------------------------------

    def is_admitted(self, participant_id: str) -> bool:
        return participant_id in self.lobby.participants

    def is_empty(self) -> bool:
        return not self.lobby.participants and not self.lobby.waiting

    def require_admitted(self, participant_id: str) -> Participant:
        """The admitted participant; a waiting or unknown one is refused."""
        if self.ended:
            raise Forbidden("the conference has ended", field=None)
        person = self.lobby.participants.get(participant_id)
        if person is not None:
            return person
        if participant_id in self.lobby.waiting:
            raise Forbidden("you are waiting in the lobby", field="type")
        raise Forbidden("join the conference first", field="type")

    # -- events -----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        if self.ended:
            return self._after_end(event)
        actions = self._handle(event)
        self.kinds = {
            pid: kind
            for pid, kind in self.kinds.items()
            if pid in self.lobby.participants or pid in self.lobby.waiting
        }
        return actions

    def _handle(self, event: Event) -> list[Action]:
        match event:
            case Join():
                return self._join(event)
            case Admit() | Reject():
                self.require_admitted(event.moderator_id)
                return self._follow(self.lobby.handle(event))
            case Leave():
                return self._leave(event)
            case Lock():
                self.require_admitted(event.moderator_id)
                actions = self.lobby.handle(lb.SetLock(event.moderator_id, event.locked))
                return [PersistLock(self.conference_id, event.locked), *self._follow(actions)]
            case Reconfigure():
                return self._follow(self.lobby.handle(lb.Configure(event.locked, event.escalation)))
            case Chat():
                self.require_admitted(event.participant_id)
                posted = self.chat.post(
                    self.lobby,
                    event.participant_id,
                    event.text,
                    event.to,
                    chat_enabled=event.chat_enabled,
                    now=event.at,
                )
                return self._follow(posted)
            case Mute():
                self.require_admitted(event.moderator_id)
                return self._follow(moderation.mute(self.lobby, event.moderator_id, event.target))
            case Remove():
                self.require_admitted(event.moderator_id)
                removed = moderation.remove(self.lobby, event.moderator_id, event.target)
                return self._follow(removed)
            case SetMedia():
                self.require_admitted(event.participant_id)
                changed = moderation.set_own_media(
                    self.lobby, event.participant_id, event.audio, event.video
                )
                return self._follow(changed)
            case RecordStart():
                return self._record_start(event)
            case RecordStop():
                return self._record_stop(event)
            case StreamStart() | StreamStop():
                return self._stream(event)
            case End():
                self.require_admitted(event.moderator_id)
                self.lobby.moderator(event.moderator_id)
                return self._end()
            case Terminate():
                return self._end()
            case LegOpened():
                if self.is_admitted(event.participant_id):
                    self.legs[event.participant_id] = event.leg_id
                    return []
                return [CloseLeg(event.leg_id)]  # gone before its leg was written
            case _:
                assert_never(event)

    def _after_end(self, event: Event) -> list[Action]:
        """An ended session does nothing more; a participant who asks is refused."""
        match event:
            case Leave() | Terminate() | Reconfigure():
                return []
            case LegOpened():
                return [CloseLeg(event.leg_id)]
            case Join():
                raise Forbidden("the conference has ended", field="conference_id")
            case _:
                raise Forbidden("the conference has ended", field=None)

    # -- joining and leaving ----------------------------------------------------------------

    def _join(self, event: Join) -> list[Action]:
        actions = self.lobby.handle(
            lb.Join(
                event.participant_id,
                event.account_id,
                event.display_name,
                moderator=event.account_id == self.owner_id,
                permissions=event.permissions,
                encrypted=terms(event.leg).encrypted,
            )
        )
        self.kinds[event.participant_id] = event.leg
        return self._follow(actions)

    def _leave(self, event: Leave) -> list[Action]:
        actions = self._follow(self.lobby.handle(event))
        if not self.ended and self.is_empty():
            actions += self._end()  # the last one waiting gave up: nobody is left
        return actions

    # -- recording and streaming ------------------------------------------------------------

    def _record_start(self, event: RecordStart) -> list[Action]:
        person = self.require_admitted(event.participant_id)
        started = notices.start_recording(
            self.recording,
            person,
            event.recording_id,
            event.permissions,
            event.recording_enabled,
            event.at,
        )
        self.recording = started
        present = tuple(p.account_id for p in self.lobby.participants.values())
        start = StartRecording(started.recording_id, self.conference_id, person.account_id, present)
        return [start, *self._follow(self.lobby.broadcast(started.notice))]

    def _record_stop(self, event: RecordStop) -> list[Action]:
        person = self.require_admitted(event.participant_id)
        stopped = notices.stop_recording(self.recording, person, event.at)
        assert self.recording is not None  # stop_recording refuses otherwise
        recording_id = self.recording.recording_id
        self.recording = None
        return [StopRecording(recording_id), *self._follow(self.lobby.broadcast(stopped))]

    def _stream(self, event: StreamStart | StreamStop) -> list[Action]:
        person = self.require_admitted(event.participant_id)
        notices.may_stream(person, self.owner_id, event.permissions, event.streaming_enabled)
        if isinstance(event, StreamStart):
            self.streaming_notice = notices.streaming_started(person, event.at)
            return self._follow(self.lobby.broadcast(self.streaming_notice))
        self.streaming_notice = None
        return self._follow(self.lobby.broadcast(notices.streaming_stopped(person, event.at)))

    # -- what the lobby's hooks mean for the conference -------------------------------------

    def _follow(self, actions: list[lb.Action]) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            match action:
                case Send() | Close():
                    out.append(action)
                case lb.Admitted():
                    out += self._admitted(action.participant_id, action.account_id)
                case lb.Departed():
                    out += self._departed(action.participant_id)
                case lb.Emptied():
                    out += self._end()
                case lb.Dismissed():
                    out += [
                        Send(action.participant_id, ended_message(self.conference_id)),
                        Close(action.participant_id, CLOSE_ENDED, "the conference has ended"),
                        WithdrawKeys(action.participant_id, rekey=False),
                    ]
                case _:
                    assert_never(action)
        return out

    def _admitted(self, participant_id: str, account_id: str) -> list[Action]:
        """The CDR leg of its kind, what is going on, the chat so far, then its media keys."""
        out: list[Action] = []
        if not self.call_open:
            self.call_open = True
            out.append(OpenCall(self.call_id, self.conference_id, self.enterprise_id))
        if self.recording is not None:
            out.append(AddRecordingParticipant(self.recording.recording_id, account_id))
        leg = terms(self.kinds.get(participant_id, LegKind.CLIENT))
        out.append(OpenLeg(self.call_id, participant_id, account_id, leg.encrypted, leg.transport))
        if self.recording is not None:
            out.append(Send(participant_id, self.recording.notice))
        if self.streaming_notice is not None:
            out.append(Send(participant_id, self.streaming_notice))
        out += self.chat.history_for(participant_id)
        out.append(IssueKeys(participant_id))
        return out

    def _departed(self, participant_id: str) -> list[Action]:
        out: list[Action] = [WithdrawKeys(participant_id, rekey=True)]
        leg = self.legs.pop(participant_id, None)
        if leg is not None:
            out.append(CloseLeg(leg))
        return out

    def _end(self) -> list[Action]:
        """Drop the chat, close recording and CDR, then tell everyone and close their connections."""
        if self.ended:
            return []
        self.ended = True
        self.chat.close()
        # The record is closed before anyone is told, so a participant who saw the end reads it.
        out: list[Action] = []
        if self.recording is not None:
            out.append(StopRecording(self.recording.recording_id))
            self.recording = None
        if self.call_open:
            out.append(CloseCall(self.call_id))
        out += self._follow(self.lobby.handle(lb.Dissolve()))
        self.legs.clear()
        self.kinds.clear()
        self.streaming_notice = None
        out.append(FinishConference(self.conference_id))
        return out

    # -- writing down and rebuilding ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild this session, as JSON-ready data; never the chat."""

        def person(p: Participant) -> dict[str, Any]:
            return {
                "participant_id": p.participant_id,
                "account_id": p.account_id,
                "display_name": p.display_name,
                "moderator": p.moderator,
                "permissions": sorted(p.permissions),
                "audio": p.audio,
                "video": p.video,
                "encrypted": p.encrypted,
            }

        recording = self.recording
        return {
            "version": SNAPSHOT_VERSION,
            "conference_id": self.conference_id,
            "enterprise_id": self.enterprise_id,
            "owner_id": self.owner_id,
            "call_id": self.call_id,
            "call_open": self.call_open,
            "locked": self.lobby.locked,
            "escalation": self.lobby.escalation,
            "participants": [person(p) for p in self.lobby.participants.values()],
            "waiting": [person(p) for p in self.lobby.waiting.values()],
            "kinds": {pid: kind.value for pid, kind in self.kinds.items()},
            "legs": dict(self.legs),
            "recording": None
            if recording is None
            else {
                "recording_id": recording.recording_id,
                "recorder_id": recording.recorder_id,
                "started_notice": recording.notice.encode(),
            },
            "streaming_notice": None
            if self.streaming_notice is None
            else self.streaming_notice.encode(),
            "ended": self.ended,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> ConferenceSession:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown conference session snapshot version {data.get('version')!r}")

        def person(p: dict[str, Any]) -> Participant:
            return Participant(**{**p, "permissions": frozenset(p["permissions"])})

        lobby = Lobby(
            data["conference_id"],
            locked=data["locked"],
            escalation=data["escalation"],
            participants={p["participant_id"]: person(p) for p in data["participants"]},
            waiting={p["participant_id"]: person(p) for p in data["waiting"]},
        )
        recording, streaming = data["recording"], data["streaming_notice"]
        return cls(
            data["conference_id"],
            data["enterprise_id"],
            data["owner_id"],
            data["call_id"],
            lobby,
            kinds={pid: LegKind(kind) for pid, kind in data["kinds"].items()},
            legs={pid: int(leg) for pid, leg in data["legs"].items()},
            call_open=data["call_open"],
            recording=None
            if recording is None
            else notices.Recording(
                recording["recording_id"],
                recording["recorder_id"],
                _notice(recording["started_notice"]),
            ),
            streaming_notice=None if streaming is None else _notice(streaming),
            ended=data["ended"],
        )


def ended_message(conference_id: str) -> wire.ConferenceEnded:
    return wire.ConferenceEnded(conference_id)


def _notice(data: object) -> wire.Notice:
    notice = wire.decode(data, wire.Sender.SERVER)
    if not isinstance(notice, wire.Notice):
        raise ValueError(f"not a notice: {data!r}")
    return notice


__all__ = ["CLOSE_ENDED", "ConferenceSession", "ended_message"]
