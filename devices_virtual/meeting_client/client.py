"""The meeting client of a room device or a user, as a sans-IO state machine (contract:
docs/meeting-api.md).

It logs in (a user with a password; a room system registers once with its one-time code and a CSR,
then authenticates with its certificate), opens the WSS signaling socket, creates or joins a
conference (with a password; in a locked conference it waits in the lobby until admitted), follows
the roster, obeys mute and remove, sends and receives chat, shows the recording notice and leaves.
A moderator may admit the lobby automatically (`auto_admit`), as scenarios need. It joins with
`resumable` and keeps the resume token the server sends: when its socket drops mid-conference it
opens a new one (to the same URL: the region's balancer, so any replica) and sends `resume`, and
is back in its place (admitted or waiting) on `resumed`; it retries every `RESUME_RETRY_S` up to
`RESUME_ATTEMPTS` times, then counts the conference as lost ("disconnected").

Media comes with the media issue: `on_media_keys` is where the SRTP keys arrive; it returns no
actions yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from devices_virtual.agent.actions import CancelTimer, HttpRequest, StartTimer
from devices_virtual.meeting_client.actions import (
    ClientAction,
    CloseSocket,
    OpenSocket,
    SendSocket,
    Show,
    StoreRoomCredential,
)
from devices_virtual.meeting_client.events import (
    ClientEvent,
    CreateConference,
    HttpAnswer,
    HttpFailed,
    JoinConference,
    LeaveConference,
    Moderate,
    SendChat,
    SetMedia,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    Start,
    Stop,
    TimerDue,
)
from protocol import signaling as wire
from protocol.signaling import MessageType, NoticeKind, SignalingClose

T_PING = "ping"
T_RESUME = "resume"
RESUME_RETRY_S = 0.2
RESUME_ATTEMPTS = 50
REVOKED_CODE = SignalingClose.UNAUTHENTICATED
MAX_CHAT = 2000


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class RoomSystemRegistration:
    """A room system's first start: the administrator's one-time code and the device's CSR."""

    registration_code: str
    csr_pem: str


@dataclass(frozen=True, slots=True)
class RoomSystemCertificate:
    """A room system that registered before: its client certificate authenticates it."""

    account_id: str


Credentials = PasswordLogin | RoomSystemRegistration | RoomSystemCertificate


class State(StrEnum):
    IDLE = "idle"
    LOGGING_IN = "logging_in"
    CONNECTING = "connecting"
    READY = "ready"
    CREATING = "creating"
    JOINING = "joining"
    RESUMING = "resuming"  # the socket dropped mid-conference: taking the place back
    LOBBY = "lobby"
    IN_CONFERENCE = "in_conference"
    FAILED = "failed"
    STOPPED = "stopped"


class MeetingClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        auto_admit: bool = False,
        ping_s: float = 25.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.auto_admit = auto_admit
        self.ping_s = ping_s
        self.state = State.IDLE
        self.token: str | None = None
        self.account_id: str | None = (
            credentials.account_id if isinstance(credentials, RoomSystemCertificate) else None
        )
        self.conference_id: str | None = None
        self.participant_id: str | None = None
        self.moderator = False
        self.roster: list[dict[str, Any]] = []
        self.lobby: list[dict[str, Any]] = []
        self.locked = False
        self.audio = True
        self.video = True
        self.recording = False
        self.chat: list[dict[str, Any]] = []
        self.notices: list[str] = []
        self.outcome: str | None = None  # how the last conference ended for this client
        self.last_error: dict[str, Any] | None = None
        self._pending: dict[int, str] = {}
        self._next_id = 0
        self._socket_open = False
        self._join_password: str | None = None
        self._queued: list[ClientEvent] = []
        self._resume_token: dict[str, Any] | None = None
        self._resume_attempts = 0

    @property
    def room_system(self) -> bool:
        return not isinstance(self.credentials, PasswordLogin)

    def handle(self, event: ClientEvent) -> list[ClientAction]:
        match event:
            case Start():
                return self._start()
            case Stop():
                return self._stop()
            case HttpAnswer() | HttpFailed():
                return self._answer(event)
            case SocketOpened():
                self._socket_open = True
                return []
            case SocketMessage():
                return self._message(event.now, event.message)
            case SocketClosed():
                return self._closed(event.now, event.code)
            case TimerDue():
                return self._timer(event.now, event.name)
            case CreateConference() | JoinConference():
                if self.state is not State.READY:
                    return self._queue_until_ready(event)
                if isinstance(event, CreateConference):
                    return self._create(event)
                return self._join(event.conference_id, event.password)
            case SendChat():
                return self._chat(event.text, event.to)
            case Moderate():
                return self._moderate(event.action, event.target)
            case SetMedia():
                return self._media(event.audio, event.video)
            case LeaveConference():
                return self._leave()
        raise TypeError(f"not a meeting client event: {event!r}")

    # -- media hook (filled in by the media issue) ----------------------------------------------

    def on_media_keys(self, now: float, message: dict[str, Any]) -> list[ClientAction]:
        """SRTP keys and the relay address for this participant. Not used yet: no actions."""
        return []

    # -- login and socket ------------------------------------------------------------------------

    def _start(self) -> list[ClientAction]:
        credentials = self.credentials
        if isinstance(credentials, PasswordLogin):
            self.state = State.LOGGING_IN
            body = {"username": credentials.username, "password": credentials.password}
            return [self._request("POST", "/v1/auth/login", "login", body, mtls=False)]
        if isinstance(credentials, RoomSystemRegistration):
            self.state = State.LOGGING_IN
            body = {
                "registration_code": credentials.registration_code,
                "csr_pem": credentials.csr_pem,
            }
            return [
                self._request("POST", "/v1/room-systems/register", "register", body, mtls=False)
            ]
        return self._open_socket()

    def _open_socket(self) -> list[ClientAction]:
        if self.state is not State.RESUMING:
            self.state = State.CONNECTING
        scheme, rest = self.base_url.split("://", 1)
        ws = "wss" if scheme == "https" else "ws"
        return [OpenSocket(f"{ws}://{rest}{wire.PATH}", self.token)]

    def _stop(self) -> list[ClientAction]:
        actions: list[ClientAction] = []
        if self._socket_open:
            if self.conference_id is not None:
                actions.append(SendSocket(wire.Leave().encode()))
            actions.append(CloseSocket())
        actions.append(CancelTimer(T_PING))
        if self.token is not None:
            actions.append(self._request("POST", "/v1/auth/logout", "logout", None))
        self._reset_conference("left" if self.conference_id else self.outcome)
        self.state = State.STOPPED
        return actions

    def _closed(self, now: float, code: int) -> list[ClientAction]:
        self._socket_open = False
        if self.state in (State.STOPPED, State.FAILED):
            return []
        resumable = self._resume_token is not None and self.conference_id is not None
        in_place = self.state in (State.IN_CONFERENCE, State.LOBBY, State.RESUMING)
        if resumable and in_place and code != REVOKED_CODE:
            if self._resume_attempts < RESUME_ATTEMPTS:
                self._resume_attempts += 1
                first = self.state is not State.RESUMING
                self.state = State.RESUMING
                if first:
                    return [CancelTimer(T_PING), *self._open_socket()]
                return [StartTimer(T_RESUME, now + RESUME_RETRY_S)]
            self.state = State.READY  # given up: a fresh socket, the conference is lost
        if self.conference_id is not None:
            self._reset_conference(self.outcome or "disconnected")
        if code == REVOKED_CODE or self.state is State.CONNECTING:
            self.state = State.FAILED
            reason = "access revoked" if code == REVOKED_CODE else f"signaling refused ({code})"
            return [CancelTimer(T_PING), Show("error", reason)]
        # the server closes the socket after `removed`, `rejected` and `conference.ended`;
        # a client that is still running opens a fresh one
        return [CancelTimer(T_PING), *self._open_socket()]

    # -- conferences -----------------------------------------------------------------------------

    def _queue_until_ready(self, event: ClientEvent) -> list[ClientAction]:
        if self.state in (State.STOPPED, State.FAILED):
            raise ValueError(f"the client is {self.state.value}")
        if self.state in (State.IDLE, State.LOGGING_IN, State.CONNECTING):
            self._queued.append(event)
            return []
        raise ValueError(f"already {self.state.value}; leave first")

    def _create(self, event: CreateConference) -> list[ClientAction]:
        self.state = State.CREATING
        body: dict[str, Any] = {
            "title": event.title,
            "kind": event.kind,
            "locked": event.locked,
            "escalation": event.escalation,
        }
        if event.hidden:
            body["hidden"] = True
        if event.password is not None:
            body["password"] = event.password
        self._join_password = event.password
        return [self._request("POST", "/v1/conferences", "create", body)]

    def _join(self, conference_id: str, password: str | None) -> list[ClientAction]:
        self.state = State.JOINING
        self.conference_id, self.outcome, self.last_error = conference_id, None, None
        return [SendSocket(wire.Join(conference_id, password, resumable=True).encode())]

    def _leave(self) -> list[ClientAction]:
        if self.conference_id is None:
            return []
        self._reset_conference("left")
        self.state = State.READY
        return [SendSocket(wire.Leave().encode())]

    def _reset_conference(self, outcome: str | None) -> None:
        self._resume_token, self._resume_attempts = None, 0
        self.conference_id = self.participant_id = None
        self.moderator = self.recording = self.locked = False
        self.roster, self.lobby = [], []
        self.outcome = outcome

    def _in_conference(self) -> None:
        if self.state is not State.IN_CONFERENCE:
            raise ValueError(f"not in a conference (state {self.state.value})")

    def _chat(self, text: str, to: str | None) -> list[ClientAction]:
        self._in_conference()
        if not 1 <= len(text) <= MAX_CHAT:
            raise ValueError(f"a chat message has 1..{MAX_CHAT} characters")
        return [SendSocket(wire.ChatPost(text, to).encode())]

    def _moderate(self, action: str, target: str | None) -> list[ClientAction]:
        self._in_conference()
        message: wire.Message
        if action == "admit":
            message = wire.Admit(_needs(target, action))
        elif action == "reject":
            message = wire.Reject(_needs(target, action))
        elif action == "mute":
            message = wire.Mute(_needs(target, action))
        elif action == "remove":
            message = wire.Remove(_needs(target, action))
        elif action in ("lock", "unlock"):
            message = wire.Lock(action == "lock")
        elif action in ("record_start", "record_stop"):
            message = wire.Record(wire.RecordAction(action.removeprefix("record_")))
        elif action == "end":
            message = wire.End()
        else:
            raise ValueError(f"unknown moderation action {action!r}")
        return [SendSocket(message.encode())]

    def _media(self, audio: bool | None, video: bool | None) -> list[ClientAction]:
        self._in_conference()
        if audio is not None:
            self.audio = audio
        if video is not None:
            self.video = video
        return [SendSocket(wire.Media(audio, video).encode())]

    # -- what the server says ---------------------------------------------------------------------

    def _message(self, now: float, message: dict[str, Any]) -> list[ClientAction]:
        kind = message.get("type")
        if kind == MessageType.HELLO:
            return self._hello(now, message)
        if kind == MessageType.LOBBY_WAITING:
            self.state = State.LOBBY
            self.participant_id = str(message.get("participant_id"))
            return [Show("lobby", "Waiting for the host to let you in")]
        if kind == MessageType.ADMITTED:
            self.state = State.IN_CONFERENCE
            self.participant_id = str(message.get("participant_id"))
            self.moderator = bool(message.get("moderator"))
            return [Show("admitted", f"Joined {message.get('conference_id')}", message)]
        if kind == MessageType.RESUME_TOKEN:
            if message.get("conference_id") == self.conference_id:
                self._resume_token = message
            return []
        if kind == MessageType.RESUMED:
            self.state = State.IN_CONFERENCE if message.get("admitted") else State.LOBBY
            self._resume_attempts = 0
            return [Show("resumed", f"Back in {message.get('conference_id')}", message)]
        if kind == MessageType.ROSTER:
            self.roster = list(message.get("participants") or [])
            self.lobby = list(message.get("lobby") or [])
            self.locked = bool(message.get("locked"))
            return []
        if kind == MessageType.LOBBY_KNOCK:
            return self._knock(message)
        if kind == MessageType.MUTED:
            self.audio = False
            return [Show("muted", f"You were muted by {message.get('by')}")]
        if kind == MessageType.MEDIA_STATE and message.get("participant_id") == self.participant_id:
            self.audio = bool(message.get("audio", self.audio))
            self.video = bool(message.get("video", self.video))
            return []
        if kind == MessageType.CHAT:
            self.chat.append(message)
            return [Show("chat", f"{message.get('display_name')}: {message.get('text')}")]
        if kind == MessageType.NOTICE:
            return self._notice(message)
        if kind == MessageType.MEDIA_KEYS:
            return self.on_media_keys(now, message)
        if kind in wire.TERMINAL:
            outcome = {MessageType.REMOVED: "removed", MessageType.REJECTED: "rejected"}.get(
                MessageType(kind), "ended"
            )
            self._reset_conference(outcome)
            self.state = State.READY
            return [Show(outcome, f"The conference is over for you ({outcome})", message)]
        if kind == MessageType.ERROR:
            return self._error(message)
        return []

    def _hello(self, now: float, message: dict[str, Any]) -> list[ClientAction]:
        self.account_id = str(message.get("account_id") or self.account_id)
        actions: list[ClientAction] = [StartTimer(T_PING, now + self.ping_s)]
        token = self._resume_token
        if self.state is State.RESUMING and token is not None:
            resume = wire.Resume(
                str(token["conference_id"]), str(token["participant_id"]), str(token["token"])
            )
            return [*actions, SendSocket(resume.encode())]
        self.state = State.READY
        queued, self._queued = self._queued, []
        for event in queued:
            actions += self.handle(event)
        return actions

    def _knock(self, message: dict[str, Any]) -> list[ClientAction]:
        participant = message.get("participant") or {}
        name = participant.get("display_name")
        actions: list[ClientAction] = [Show("knock", f"{name} is waiting in the lobby")]
        if self.auto_admit and self.moderator and participant.get("participant_id"):
            admit = wire.Admit(participant["participant_id"])
            actions.append(SendSocket(admit.encode()))
        return actions

    def _notice(self, message: dict[str, Any]) -> list[ClientAction]:
        kind = str(message.get("kind"))
        text = str(message.get("text") or kind)
        if kind == NoticeKind.RECORDING_STARTED:
            self.recording = True
        elif kind == NoticeKind.RECORDING_STOPPED:
            self.recording = False
        self.notices.append(text)
        return [Show("notice", text, message)]

    def _error(self, message: dict[str, Any]) -> list[ClientAction]:
        self.last_error = message
        if self.state is State.RESUMING:  # the place is gone (or the token refused)
            self._reset_conference("disconnected")
            self.state = State.READY
        elif self.state is State.JOINING:
            self._reset_conference("refused")
            self.state = State.READY
        return [Show("error", str(message.get("reason")), message)]

    # -- HTTP answers and timers -------------------------------------------------------------------

    def _answer(self, event: HttpAnswer | HttpFailed) -> list[ClientAction]:
        purpose = self._pending.pop(event.request_id, None)
        if purpose is None:
            return []
        status = event.status if isinstance(event, HttpAnswer) else 0
        body = event.body if isinstance(event, HttpAnswer) else {"reason": event.reason}
        ok = 200 <= status < 300 and isinstance(body, dict)
        if purpose == "logout":
            return []
        if not ok:
            self.last_error = body if isinstance(body, dict) else {"reason": str(body)}
            if purpose == "create":
                self.state = State.READY
            else:
                self.state = State.FAILED
            return [Show("error", f"{purpose} refused ({status}): {_reason(body)}")]
        assert isinstance(body, dict)
        if purpose == "login":
            self.token = str(body["token"])
            self.account_id = str(body["account_id"])
            return self._open_socket()
        if purpose == "register":
            self.account_id = str(body["account_id"])
            self.credentials = RoomSystemCertificate(self.account_id)
            credential = StoreRoomCredential(
                self.account_id, str(body["certificate_pem"]), str(body["ca_pem"])
            )
            return [credential, *self._open_socket()]
        if purpose == "create":
            self.state = State.READY
            return self._join(str(body["conference_id"]), self._join_password)
        return []

    def _timer(self, now: float, name: str) -> list[ClientAction]:
        if name == T_RESUME:
            return self._open_socket() if self.state is State.RESUMING else []
        if name != T_PING or not self._socket_open or self.state is State.STOPPED:
            return []
        return [SendSocket(wire.Ping().encode()), StartTimer(T_PING, now + self.ping_s)]

    def _request(
        self, method: str, path: str, purpose: str, body: dict[str, Any] | None, mtls: bool = True
    ) -> HttpRequest:
        self._next_id += 1
        self._pending[self._next_id] = purpose
        return HttpRequest(
            self._next_id,
            method,
            self.base_url + path,
            "meeting",
            purpose,
            body,
            mtls=mtls and self.room_system,
            bearer=self.token,
        )


def _needs(target: str | None, action: str) -> str:
    if not target:
        raise ValueError(f"{action} needs a target")
    return target


def _reason(body: Any) -> str:
    return str(body.get("reason")) if isinstance(body, dict) else str(body)
