"""The meeting signaling protocol (MT-06, MT-09, MT-16, MT-17, MT-18): every message on the WSS
signaling socket, as a typed frozen dataclass.

Each message has `encode() -> dict` (the JSON object on the wire) and the module's `decode(dict)`
gives the typed message back, refusing an unknown type, a missing field or a field of the wrong type
with `SignalingError`. Optional fields whose value is None are left out of the JSON (except the
`field` of an error, which is always there). Unknown extra keys are ignored when decoding.

Client to server: `auth` (when no bearer token or client certificate came with the upgrade),
`join`, `leave`, `ping`, `admit`, `reject`, `lock`, `mute`, `remove`, `media`, `chat`, `record`,
`stream`, `end`.

Server to client: `hello`, `pong`, `error`, `roster`, `lobby.knock`, `lobby.waiting`, `admitted`,
`rejected`, `removed`, `muted`, `media.state`, `chat`, `notice`, `conference.ended`, `media.keys`,
`media.move`.

`chat` goes both ways with different fields: the client's `ChatPost` (text, to) and the server's
`ChatMessage` (from, display_name, text, at, private). `decode` tells them apart by `sender`, or,
without one, by the `from` key only the server's carries.

The server closes a socket with a `SignalingClose` code.
"""

from __future__ import annotations

import dataclasses as dc
import types
import typing
from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Union

from protocol.errors import ErrorCode

PATH = "/v1/signaling"


class MessageType(StrEnum):
    # client to server
    AUTH = "auth"
    JOIN = "join"
    LEAVE = "leave"
    PING = "ping"
    ADMIT = "admit"
    REJECT = "reject"
    LOCK = "lock"
    MUTE = "mute"
    REMOVE = "remove"
    MEDIA = "media"
    CHAT = "chat"  # both ways
    RECORD = "record"
    STREAM = "stream"
    END = "end"
    RESUME = "resume"  # a new socket takes over a participant's place (its resume token)
    # server to client
    HELLO = "hello"
    PONG = "pong"
    ERROR = "error"
    ROSTER = "roster"
    LOBBY_KNOCK = "lobby.knock"
    LOBBY_WAITING = "lobby.waiting"
    ADMITTED = "admitted"
    REJECTED = "rejected"
    REMOVED = "removed"
    MUTED = "muted"
    MEDIA_STATE = "media.state"
    NOTICE = "notice"
    CONFERENCE_ENDED = "conference.ended"
    MEDIA_KEYS = "media.keys"
    MEDIA_MOVE = "media.move"
    RESUME_TOKEN = "resume.token"
    RESUMED = "resumed"


class Sender(StrEnum):
    CLIENT = "client"
    SERVER = "server"


class SignalingClose(IntEnum):
    """The close codes of the signaling socket."""

    ENDED = 1000  # the conference has ended
    REMOVED = 4000  # a moderator removed the participant
    UNAUTHENTICATED = 4401  # no valid credential, or it was revoked mid-call
    FORBIDDEN = 4403  # refused; also a joiner a moderator rejected from the lobby


class NoticeKind(StrEnum):
    RECORDING_STARTED = "recording.started"
    RECORDING_STOPPED = "recording.stopped"
    STREAMING_STARTED = "streaming.started"
    STREAMING_STOPPED = "streaming.stopped"


class RecordAction(StrEnum):
    """The `action` of `record` and `stream`."""

    START = "start"
    STOP = "stop"


ALL = "all"  # the `target` of `mute` and `remove` that means everyone else


class SignalingError(ValueError):
    """A JSON object that is not a signaling message: unknown type, missing or mistyped field."""


_OMIT = {"omit_none": True}


def _optional(**kwargs: Any) -> Any:
    """An optional field, left out of the JSON when None."""
    return dc.field(default=None, metadata=_OMIT, **kwargs)


def _wire(name: str, **kwargs: Any) -> Any:
    """A field whose JSON key is not a Python name (`from`)."""
    return dc.field(metadata={"wire": name}, **kwargs)


@dc.dataclass(frozen=True)
class Message:
    """A signaling message; subclasses set `TYPE` and `SENDER`."""

    TYPE: ClassVar[MessageType]
    SENDER: ClassVar[Sender]

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE.value}
        for f in dc.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.metadata.get("wire", f.name)] = _plain(value)
        return out

    @classmethod
    def decode_fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in dc.fields(cls):
            key = f.metadata.get("wire", f.name)
            if key not in data:
                if f.default is dc.MISSING and f.default_factory is dc.MISSING:
                    raise SignalingError(f"{cls.TYPE.value}: {key} is missing")
                continue
            values[f.name] = _check(cls.TYPE.value, key, hints[f.name], data[key])
        return values

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        return cls(**cls.decode_fields(data))


def _plain(value: Any) -> Any:
    if isinstance(value, Participant):
        return value.encode()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    return value


# -- the participant of a roster or a knock ------------------------------------------------------


@dc.dataclass(frozen=True)
class Participant:
    """One participant as the roster shows it."""

    participant_id: str
    account_id: str
    display_name: str
    moderator: bool
    audio: bool
    video: bool
    encrypted: bool  # False only for a PSTN leg, whose phone side is plain G.711 (MT-08)

    def encode(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dc.fields(self)}

    @classmethod
    def decode(cls, data: object) -> Participant:
        if not isinstance(data, Mapping):
            raise SignalingError("a participant is a JSON object")
        hints = _hints(cls)
        values = {}
        for f in dc.fields(cls):
            if f.name not in data:
                raise SignalingError(f"participant: {f.name} is missing")
            values[f.name] = _check("participant", f.name, hints[f.name], data[f.name])
        return cls(**values)


# -- client to server ---------------------------------------------------------------------------


@dc.dataclass(frozen=True)
class Auth(Message):
    """The first message when the upgrade carried no credential: an account's token, or a gateway's
    token with the caller it brings in (PSTN: `gateway_token`, `caller`; interop: `interop_token`,
    `protocol` "sips" or "h323", `caller`, `name`)."""

    TYPE = MessageType.AUTH
    SENDER = Sender.CLIENT
    token: str | None = _optional()
    gateway_token: str | None = _optional()
    interop_token: str | None = _optional()
    protocol: str | None = _optional()
    caller: str | None = _optional()
    name: str | None = _optional()


@dc.dataclass(frozen=True)
class Join(Message):
    TYPE = MessageType.JOIN
    SENDER = Sender.CLIENT
    conference_id: str
    password: str | None = _optional()
    resumable: bool | None = _optional()  # true: send me a resume token (`resume.token`)


@dc.dataclass(frozen=True)
class Resume(Message):
    """Sent first on a new socket (after `hello`) to take back a place whose socket dropped."""

    TYPE = MessageType.RESUME
    SENDER = Sender.CLIENT
    conference_id: str
    participant_id: str
    token: str
    relay: str | None = _optional()  # the relay of the last grant it holds


@dc.dataclass(frozen=True)
class Leave(Message):
    TYPE = MessageType.LEAVE
    SENDER = Sender.CLIENT


@dc.dataclass(frozen=True)
class Ping(Message):
    TYPE = MessageType.PING
    SENDER = Sender.CLIENT


@dc.dataclass(frozen=True)
class Admit(Message):
    TYPE = MessageType.ADMIT
    SENDER = Sender.CLIENT
    participant_id: str


@dc.dataclass(frozen=True)
class Reject(Message):
    TYPE = MessageType.REJECT
    SENDER = Sender.CLIENT
    participant_id: str


@dc.dataclass(frozen=True)
class Lock(Message):
    TYPE = MessageType.LOCK
    SENDER = Sender.CLIENT
    locked: bool


@dc.dataclass(frozen=True)
class Mute(Message):
    TYPE = MessageType.MUTE
    SENDER = Sender.CLIENT
    target: str  # a participant id, or ALL


@dc.dataclass(frozen=True)
class Remove(Message):
    TYPE = MessageType.REMOVE
    SENDER = Sender.CLIENT
    target: str  # a participant id, or ALL


@dc.dataclass(frozen=True)
class Media(Message):
    """Turn one's own audio or video off or on."""

    TYPE = MessageType.MEDIA
    SENDER = Sender.CLIENT
    audio: bool | None = _optional()
    video: bool | None = _optional()


@dc.dataclass(frozen=True)
class ChatPost(Message):
    """A chat message to everyone, or privately `to` one participant."""

    TYPE = MessageType.CHAT
    SENDER = Sender.CLIENT
    text: str
    to: str | None = _optional()


@dc.dataclass(frozen=True)
class Record(Message):
    TYPE = MessageType.RECORD
    SENDER = Sender.CLIENT
    action: RecordAction


@dc.dataclass(frozen=True)
class Stream(Message):
    TYPE = MessageType.STREAM
    SENDER = Sender.CLIENT
    action: RecordAction


@dc.dataclass(frozen=True)
class End(Message):
    TYPE = MessageType.END
    SENDER = Sender.CLIENT


# -- server to client ---------------------------------------------------------------------------


@dc.dataclass(frozen=True)
class Hello(Message):
    TYPE = MessageType.HELLO
    SENDER = Sender.SERVER
    account_id: str
    display_name: str


@dc.dataclass(frozen=True)
class Pong(Message):
    TYPE = MessageType.PONG
    SENDER = Sender.SERVER


@dc.dataclass(frozen=True)
class Error(Message):
    """A refused message or sign-in; `field` is always on the wire, null when there is none."""

    TYPE = MessageType.ERROR
    SENDER = Sender.SERVER
    error: ErrorCode
    field: str | None
    reason: str


@dc.dataclass(frozen=True)
class Roster(Message):
    """Who is in the conference; `lobby` (who waits) is filled for moderators only."""

    TYPE = MessageType.ROSTER
    SENDER = Sender.SERVER
    conference_id: str
    participants: tuple[Participant, ...]
    lobby: tuple[Participant, ...]
    locked: bool


@dc.dataclass(frozen=True)
class LobbyKnock(Message):
    """To the moderators: someone waits in the lobby."""

    TYPE = MessageType.LOBBY_KNOCK
    SENDER = Sender.SERVER
    participant: Participant


@dc.dataclass(frozen=True)
class LobbyWaiting(Message):
    TYPE = MessageType.LOBBY_WAITING
    SENDER = Sender.SERVER
    conference_id: str
    participant_id: str


@dc.dataclass(frozen=True)
class Admitted(Message):
    TYPE = MessageType.ADMITTED
    SENDER = Sender.SERVER
    conference_id: str
    participant_id: str
    moderator: bool


@dc.dataclass(frozen=True)
class ResumeToken(Message):
    """The secret that lets a new socket of the same account resume this participant's place."""

    TYPE = MessageType.RESUME_TOKEN
    SENDER = Sender.SERVER
    conference_id: str
    participant_id: str
    token: str


@dc.dataclass(frozen=True)
class Resumed(Message):
    """This socket now holds the participant's place (admitted, or still waiting)."""

    TYPE = MessageType.RESUMED
    SENDER = Sender.SERVER
    conference_id: str
    participant_id: str
    admitted: bool


@dc.dataclass(frozen=True)
class Rejected(Message):
    TYPE = MessageType.REJECTED
    SENDER = Sender.SERVER
    conference_id: str
    reason: str


@dc.dataclass(frozen=True)
class Removed(Message):
    TYPE = MessageType.REMOVED
    SENDER = Sender.SERVER
    by: str


@dc.dataclass(frozen=True)
class Muted(Message):
    TYPE = MessageType.MUTED
    SENDER = Sender.SERVER
    by: str
    audio: bool = False


@dc.dataclass(frozen=True)
class MediaState(Message):
    TYPE = MessageType.MEDIA_STATE
    SENDER = Sender.SERVER
    participant_id: str
    audio: bool
    video: bool


@dc.dataclass(frozen=True)
class ChatMessage(Message):
    TYPE = MessageType.CHAT
    SENDER = Sender.SERVER
    from_: str = _wire("from")
    display_name: str = _wire("display_name")
    text: str = _wire("text")
    at: str = _wire("at")  # ISO 8601
    private: bool = _wire("private")


@dc.dataclass(frozen=True)
class Notice(Message):
    """A recording or live-streaming notice, shown to everyone in the conference."""

    TYPE = MessageType.NOTICE
    SENDER = Sender.SERVER
    kind: NoticeKind
    by: str
    by_account_id: str
    text: str
    at: str  # ISO 8601
    recording_id: str | None = _optional()


@dc.dataclass(frozen=True)
class ConferenceEnded(Message):
    TYPE = MessageType.CONFERENCE_ENDED
    SENDER = Sender.SERVER
    conference_id: str


@dc.dataclass(frozen=True)
class MediaKeys(Message):
    """A participant's media grant from the relay (its keys and address, parsed by
    `media_core.endpoint.MediaGrant`), sent flat next to `type` and `participant_id`; `grant` holds
    the grant's other fields. With `rekey` the keys replace the current ones after someone left."""

    TYPE = MessageType.MEDIA_KEYS
    SENDER = Sender.SERVER
    participant_id: str
    grant: Mapping[str, Any] = dc.field(default_factory=dict)
    rekey: bool | None = None

    def encode(self) -> dict[str, Any]:
        out = {**self.grant, "type": self.TYPE.value, "participant_id": self.participant_id}
        return out | ({"rekey": self.rekey} if self.rekey is not None else {})

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        pid = _check(cls.TYPE.value, "participant_id", str, _present(cls, data, "participant_id"))
        rekey = _check(cls.TYPE.value, "rekey", bool | None, data.get("rekey"))
        grant = {k: v for k, v in data.items() if k not in ("type", "participant_id", "rekey")}
        return cls(pid, grant, rekey)


@dc.dataclass(frozen=True)
class MediaMove(Message):
    """A new relay with fresh keys, after the participant's relay failed (MT-03)."""

    TYPE = MessageType.MEDIA_MOVE
    SENDER = Sender.SERVER
    participant_id: str
    grant: Mapping[str, Any] = dc.field(default_factory=dict)

    def encode(self) -> dict[str, Any]:
        return {**self.grant, "type": self.TYPE.value, "participant_id": self.participant_id}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        pid = _check(cls.TYPE.value, "participant_id", str, _present(cls, data, "participant_id"))
        grant = {k: v for k, v in data.items() if k not in ("type", "participant_id")}
        return cls(pid, grant)


CLIENT_MESSAGES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Auth, Join, Leave, Ping, Admit, Reject, Lock, Mute, Remove, Media, ChatPost, Record,
        Stream, End, Resume,
    )
}  # fmt: skip
SERVER_MESSAGES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello, Pong, Error, Roster, LobbyKnock, LobbyWaiting, Admitted, Rejected, Removed, Muted,
        MediaState, ChatMessage, Notice, ConferenceEnded, MediaKeys, MediaMove, ResumeToken,
        Resumed,
    )
}  # fmt: skip
TERMINAL = frozenset({MessageType.REJECTED, MessageType.REMOVED, MessageType.CONFERENCE_ENDED})
"""After these the server closes the socket: the conference is over for this participant."""


def decode(data: object, sender: Sender | None = None) -> Message:
    """The typed message of a signaling JSON object (from `sender`, when given)."""
    if not isinstance(data, Mapping):
        raise SignalingError("a signaling message is a JSON object")
    raw = data.get("type")
    if not isinstance(raw, str) or raw not in MessageType._value2member_map_:
        raise SignalingError(f"unknown message type {raw!r}")
    kind = MessageType(raw)
    if sender is None:
        sender = Sender.SERVER if kind in SERVER_MESSAGES and "from" in data else None
        sender = sender or (Sender.CLIENT if kind in CLIENT_MESSAGES else Sender.SERVER)
    table = CLIENT_MESSAGES if sender is Sender.CLIENT else SERVER_MESSAGES
    cls = table.get(kind)
    if cls is None:
        raise SignalingError(f"a {sender.value} does not send {kind.value!r}")
    return cls.from_wire(data)


# -- checking values against the annotations -----------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _present(cls: type[Message], data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise SignalingError(f"{cls.TYPE.value}: {key} is missing")
    return data[key]


def _check(message: str, key: str, hint: Any, value: Any) -> Any:
    """`value` as the annotation `hint` wants it; SignalingError when it cannot be."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _check(message, key, inner, value)
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise SignalingError(f"{message}: {key} must be a list")
        return tuple(_check(message, key, item, v) for v in value)
    if hint is Participant:
        return Participant.decode(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        if not isinstance(value, str) or value not in hint._value2member_map_:
            raise SignalingError(f"{message}: {key} {value!r} is not one of {_values(hint)}")
        return hint(value)
    if origin is not None and issubclass(origin, Mapping):
        if not isinstance(value, Mapping):
            raise SignalingError(f"{message}: {key} must be an object")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise SignalingError(f"{message}: {key} must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise SignalingError(f"{message}: {key} must be a string")
        return value
    raise TypeError(f"{message}: no check for {key}: {hint!r}")  # a programming error


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)
