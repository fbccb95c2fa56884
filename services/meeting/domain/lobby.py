"""The lobby and roster of one live conference, as a sans-IO state machine (MT-09).

Feed it events (`Join`, `Admit`, `Reject`, `Leave`, `SetLock`, `Configure`, `Dissolve`) through
`handle()`; it returns actions (`Send` a message to a participant, `Close` a participant's
connection, and the `Admitted`, `Departed`, `Dismissed` and `Emptied` hooks that the conference
session turns into CDR legs, media keys and session ends). Nothing else writes its state: a lock or
escalation changed by an administrator is the `Configure` event, the end of the session `Dissolve`.

The admission rule has no way around it: when the conference is locked or uses call escalation,
every joiner who is not one of its moderators waits in the lobby until a moderator admits them.
Arriving before any moderator, joining again or joining many times at once admits nobody. Waiting
and rejected joiners are never sent the roster.

The messages it sends are the signaling protocol's typed messages (`protocol.signaling`); the
driver encodes them for the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import assert_never

from protocol import signaling as wire
from services.common.errors import Conflict, Forbidden, NotFound

Message = wire.Message


@dataclass
class Participant:
    participant_id: str
    account_id: str
    display_name: str
    moderator: bool
    permissions: frozenset[str] = frozenset()
    audio: bool = True
    video: bool = True
    encrypted: bool = True  # False only for a PSTN leg, whose phone side is plain G.711 (MT-08)

    def view(self) -> wire.Participant:
        return wire.Participant(
            self.participant_id,
            self.account_id,
            self.display_name,
            self.moderator,
            self.audio,
            self.video,
            self.encrypted,
        )


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    participant_id: str
    account_id: str
    display_name: str
    moderator: bool
    permissions: frozenset[str] = frozenset()
    encrypted: bool = True


@dataclass(frozen=True)
class Admit:
    moderator_id: str
    participant_id: str


@dataclass(frozen=True)
class Reject:
    moderator_id: str
    participant_id: str


@dataclass(frozen=True)
class Leave:
    participant_id: str


@dataclass(frozen=True)
class SetLock:
    moderator_id: str
    locked: bool


@dataclass(frozen=True)
class Configure:
    """The conference's lock or call escalation changed outside the call (by an administrator
    through the API, who was authorised there); `None` keeps a setting as it is."""

    locked: bool | None = None
    escalation: bool | None = None


@dataclass(frozen=True)
class Dissolve:
    """The conference session ends: everyone, admitted or waiting, is dismissed."""


Event = Join | Admit | Reject | Leave | SetLock | Configure | Dissolve

# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    to: str
    message: Message


@dataclass(frozen=True)
class Close:
    participant_id: str
    code: int
    reason: str


@dataclass(frozen=True)
class Admitted:
    """A participant is now in the conference: open its CDR leg, hand out its media keys."""

    participant_id: str
    account_id: str


@dataclass(frozen=True)
class Departed:
    """An admitted participant left or was removed: close its CDR leg."""

    participant_id: str
    account_id: str


@dataclass(frozen=True)
class Emptied:
    """The last admitted participant has gone: the conference session ends."""


@dataclass(frozen=True)
class Dismissed:
    """The session ended while this participant was in it (admitted or waiting)."""

    participant_id: str


Action = Send | Close | Admitted | Departed | Emptied | Dismissed

CLOSE_REJECTED = wire.SignalingClose.FORBIDDEN
CLOSE_REMOVED = wire.SignalingClose.REMOVED


@dataclass
class Lobby:
    conference_id: str
    locked: bool = False
    escalation: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    waiting: dict[str, Participant] = field(default_factory=dict)

    @property
    def needs_admission(self) -> bool:
        return self.locked or self.escalation

    def handle(self, event: Event) -> list[Action]:
        match event:
            case Join():
                return self._join(event)
            case Admit():
                return self._admit(event)
            case Reject():
                return self._reject(event)
            case Leave():
                return self._leave(event.participant_id)
            case SetLock():
                return self._set_lock(event)
            case Configure():
                return self._configure(event)
            case Dissolve():
                return self._dissolve()
            case _:
                assert_never(event)

    # -- queries ----------------------------------------------------------------------------

    def moderator(self, participant_id: str) -> Participant:
        """The participant, if it is an admitted moderator; otherwise a refusal."""
        actor = self.participants.get(participant_id)
        if actor is None:
            raise Forbidden("only participants in the conference may do this", field=None)
        if not actor.moderator:
            raise Forbidden("only a moderator of the conference may do this", field=None)
        return actor

    def roster_message(self, for_id: str) -> wire.Roster:
        viewer = self.participants[for_id]
        lobby = tuple(p.view() for p in self.waiting.values()) if viewer.moderator else ()
        participants = tuple(p.view() for p in self.participants.values())
        return wire.Roster(self.conference_id, participants, lobby, self.locked)

    def roster_updates(self, only_moderators: bool = False) -> list[Action]:
        return [
            Send(pid, self.roster_message(pid))
            for pid, p in self.participants.items()
            if p.moderator or not only_moderators
        ]

    def broadcast(self, message: Message, exclude: Iterable[str] = ()) -> list[Action]:
        skip = set(exclude)
        return [Send(pid, message) for pid in self.participants if pid not in skip]

    # -- transitions ------------------------------------------------------------------------

    def _join(self, event: Join) -> list[Action]:
        if event.participant_id in self.participants or event.participant_id in self.waiting:
            raise Conflict("this connection has already joined", field="conference_id")
        person = Participant(
            event.participant_id,
            event.account_id,
            event.display_name,
            event.moderator,
            event.permissions,
            encrypted=event.encrypted,
        )
        if self.needs_admission and not person.moderator:
            self.waiting[person.participant_id] = person
            knock: Message = wire.LobbyKnock(person.view())
            waiting = wire.LobbyWaiting(self.conference_id, person.participant_id)
            actions: list[Action] = [Send(person.participant_id, waiting)]
            actions += [Send(pid, knock) for pid, p in self.participants.items() if p.moderator]
            return actions + self.roster_updates(only_moderators=True)
        return self._enter(person)

    def _enter(self, person: Participant) -> list[Action]:
        self.participants[person.participant_id] = person
        return [
            Send(
                person.participant_id,
                wire.Admitted(self.conference_id, person.participant_id, person.moderator),
            ),
            *self.roster_updates(),
            Admitted(person.participant_id, person.account_id),
        ]

    def _admit(self, event: Admit) -> list[Action]:
        self.moderator(event.moderator_id)
        person = self.waiting.pop(event.participant_id, None)
        if person is None:
            raise NotFound("nobody with this id is waiting in the lobby", field="participant_id")
        return self._enter(person)

    def _reject(self, event: Reject) -> list[Action]:
        self.moderator(event.moderator_id)
        person = self.waiting.pop(event.participant_id, None)
        if person is None:
            raise NotFound("nobody with this id is waiting in the lobby", field="participant_id")
        return [
            Send(
                person.participant_id,
                wire.Rejected(self.conference_id, "a moderator declined your request to join"),
            ),
            Close(person.participant_id, CLOSE_REJECTED, "rejected by a moderator"),
            *self.roster_updates(only_moderators=True),
        ]

    def _leave(self, participant_id: str) -> list[Action]:
        if self.waiting.pop(participant_id, None) is not None:
            return self.roster_updates(only_moderators=True)
        person = self.participants.pop(participant_id, None)
        if person is None:
            return []
        actions: list[Action] = [Departed(person.participant_id, person.account_id)]
        if not self.participants:
            return [*actions, Emptied()]
        return actions + self.roster_updates()

    def remove(self, participant_id: str, by: str) -> list[Action]:
        """Take an admitted participant out (moderation checks happen before this)."""
        if participant_id not in self.participants:
            raise NotFound("no such participant in the conference", field="target")
        return [
            Send(participant_id, wire.Removed(by)),
            Close(participant_id, CLOSE_REMOVED, "removed by a moderator"),
            *self._leave(participant_id),
        ]

    def _set_lock(self, event: SetLock) -> list[Action]:
        self.moderator(event.moderator_id)
        self.locked = event.locked
        return self.roster_updates()

    def _configure(self, event: Configure) -> list[Action]:
        if event.locked is not None:
            self.locked = event.locked
        if event.escalation is not None:
            self.escalation = event.escalation
        return self.roster_updates()

    def _dissolve(self) -> list[Action]:
        everyone = [*self.participants, *self.waiting]
        self.participants.clear()
        self.waiting.clear()
        return [Dismissed(pid) for pid in everyone]
