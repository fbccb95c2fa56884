"""The WSS signaling endpoint: join, lobby, roster, moderation, chat, recording notices (MT-06,
MT-09, MT-16, MT-17, MT-18), driving the sans-IO lobby, moderation and chat of each live conference.

Live conferences exist only in this process's memory; chat never leaves it. Every incoming message
re-checks the sender's account, so a revoked account is cut off at once. Media keys are handed out
by the `MediaKeyHook` right after admission, and only then; when a participant departs, the hook
re-keys the others, and a supervised hook moves calls to another relay when one fails (MT-03).

The region's PSTN gateway signs in with the region's gateway token and a caller number instead of
an account (MT-08). Its participant joins like anyone else (password, lobby), and its leg is marked
unencrypted in the roster and the CDR, since the phone side of the call is plain G.711.

The region's interop gateway (`services.meeting.interop`, MT-07) signs in the same way with its own
token, naming the protocol ("sips" or "h323") and the third-party caller it brings in. It does so
only after the caller came over SIP TLS with an SRTP offer, or over H.225 with H.235, so that leg is
encrypted: the CDR marks it so, with the protocol as its transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from services.common.api import bearer_token
from services.common.asgi_tls import peer_cert_pem
from services.common.clock import Clock
from services.common.db import transaction
from services.common.errors import DomainError, Forbidden, Invalid, Unauthenticated
from services.meeting.domain import accounts, cdr, conferences, moderation, recording
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity
from services.meeting.domain.chat import ChatRoom
from services.meeting.domain.lobby import (
    Action,
    Admit,
    Admitted,
    Close,
    Departed,
    Emptied,
    Join,
    Leave,
    Lobby,
    Reject,
    Send,
    SetLock,
)
from services.meeting.store.models import Conference, Enterprise

T = TypeVar("T")
log = logging.getLogger("roomtrust.meeting.signaling")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_ENDED = 1000
PSTN = "pstn"
PSTN_TRANSPORT = "pstn+g711"
CALLER_PATTERN = re.compile(r"^\+?[0-9]{3,15}$")
INTEROP = "interop"
INTEROP_TRANSPORTS = {"sips": "sips+srtp", "h323": "h323+h235"}  # CDR transport per protocol
Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


class MediaKeyHook(Protocol):
    """Where the relay control plugs in: keys for an admitted participant, withdrawn when it
    departs. With `rekey`, the hook gives everyone left new keys (through `Signaling.push`)."""

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None: ...

    async def withdraw(
        self, conference_id: str, participant_id: str, rekey: bool = True
    ) -> None: ...


@runtime_checkable
class SupervisedMedia(Protocol):
    """A media-key hook that also watches its relays for the region's lifetime (failover)."""

    async def run(self, notify: Notify) -> None: ...


class NoMediaKeys:
    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        return None

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        return None


@dataclass(eq=False)
class Connection:
    socket: WebSocket
    identity: Identity
    token: str | None
    cert: str | None
    participant_id: str = field(default_factory=lambda: f"p-{secrets.token_hex(8)}")
    gateway_token: str | None = None  # the PSTN gateway's sign-in; its caller is in `identity`
    interop_token: str | None = None  # the interop gateway's sign-in (MT-07)
    interop_protocol: str | None = None  # "sips" or "h323" for a third-party leg
    conference_id: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        async with self.lock:
            try:
                await self.socket.send_json(message)
            except Exception:
                self.closed = True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=reason[:120])


@dataclass(eq=False)
class LiveConference:
    conference_id: str
    enterprise_id: str
    owner_id: str
    lobby: Lobby
    chat: ChatRoom = field(default_factory=ChatRoom)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    call_id: str | None = None
    legs: dict[str, int] = field(default_factory=dict)
    recording_id: str | None = None
    recording_notice: dict[str, Any] | None = None
    streaming_notice: dict[str, Any] | None = None
    ended: bool = False


class Signaling:
    def __init__(
        self,
        *,
        region: str,
        sessions: sessionmaker[Session],
        clock: Clock,
        storage: recording.RecordingStorage,
        media_keys: MediaKeyHook | None = None,
        pstn_token_file: Path | None = None,
        interop_token_file: Path | None = None,
    ) -> None:
        self.region = region
        self.sessions = sessions
        self.clock = clock
        self.storage = storage
        self.media_keys = media_keys or NoMediaKeys()
        self.pstn_token_file = pstn_token_file
        self.interop_token_file = interop_token_file
        self.live: dict[str, LiveConference] = {}
        self.connections: dict[str, Connection] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _in_tx(self, fn: Callable[[Session], T]) -> T:
        with transaction(self.sessions) as session:
            return fn(session)

    async def in_tx(self, fn: Callable[[Session], T]) -> T:
        return await run_in_threadpool(self._in_tx, fn)

    def live_count(self, enterprise_id: str | None = None) -> int:
        return sum(
            1
            for c in self.live.values()
            if enterprise_id in (None, c.enterprise_id) and not c.ended
        )

    async def close_account(self, account_id: str, reason: str) -> int:
        """Close every signaling socket of an account (revocation); returns how many."""
        victims = [c for c in self.connections.values() if c.identity.account_id == account_id]
        for conn in victims:
            await self._leave(conn)
            await conn.send(
                {"type": "error", "error": "Unauthenticated", "field": None, "reason": reason}
            )
            await conn.close(CLOSE_UNAUTHENTICATED, reason)
        return len(victims)

    async def push(self, participant_id: str, message: dict[str, Any]) -> None:
        """Send a participant still in a conference a message (new keys, a media move)."""
        conn = self.connections.get(participant_id)
        if conn is not None and conn.conference_id is not None:
            await conn.send(message)

    def _gateway(self, token: str, caller: object) -> Identity:
        """The identity of a PSTN caller brought in by the region's gateway (MT-08)."""
        path = self.pstn_token_file
        expected = path.read_text().strip() if path is not None and path.exists() else ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthenticated("unknown gateway token")
        if not isinstance(caller, str) or not CALLER_PATTERN.fullmatch(caller):
            raise Invalid("caller must be a phone number of 3 to 15 digits", field="caller")
        return Identity(
            account_id=f"{PSTN}:{caller}",
            enterprise_id="",
            username=f"{PSTN}:{caller}",
            display_name=f"Phone ...{caller[-4:]}",
            role=PSTN,
            kind=PSTN,
            permissions=frozenset({perms.CALL}),
        )

    def _interop(self, token: str, protocol: object, caller: object, name: object) -> Identity:
        """The identity of a third-party system brought in by the region's interop gateway (MT-07).

        The account ID is the protocol and a digest of the caller's address, so the CDR keeps no
        third-party address (MT-15) and stays within its column."""
        self._interop_token_valid(token)
        if not isinstance(protocol, str) or protocol not in INTEROP_TRANSPORTS:
            raise Invalid("protocol must be sips or h323", field="protocol")
        if not isinstance(caller, str) or not 0 < len(caller) <= 256 or not caller.isprintable():
            raise Invalid("caller must be the caller's address", field="caller")
        display = name if isinstance(name, str) and 0 < len(name) <= 100 else None
        digest = hashlib.sha256(caller.encode()).hexdigest()[:16]
        return Identity(
            account_id=f"{protocol}:{digest}",
            enterprise_id="",
            username=f"{protocol}:{digest}",
            display_name=display or f"{protocol.upper()} room system",
            role=INTEROP,
            kind=INTEROP,
            permissions=perms.ROOM_SYSTEM,
        )

    def _interop_token_valid(self, token: str) -> None:
        path = self.interop_token_file
        expected = path.read_text().strip() if path is not None and path.exists() else ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthenticated("unknown interop gateway token")

    async def set_lock(
        self, conference_id: str, locked: bool | None, escalation: bool | None
    ) -> None:
        live = self.live.get(conference_id)
        if live is None:
            return
        async with live.lock:
            if locked is not None:
                live.lobby.locked = locked
            if escalation is not None:
                live.lobby.escalation = escalation
            await self._run(live, live.lobby.roster_updates())

    # -- the socket -------------------------------------------------------------------------

    async def serve(self, socket: WebSocket) -> None:
        token = bearer_token(socket)  # type: ignore[arg-type]
        cert = peer_cert_pem(socket.scope)
        await socket.accept()
        gateway_token: str | None = None
        interop_token: str | None = None
        interop_protocol: str | None = None
        try:
            if token is None and cert is None:
                first = await socket.receive_json()
                if not isinstance(first, dict) or first.get("type") != "auth":
                    raise Unauthenticated("authenticate first: {type: auth, token}")
                token = str(first.get("token") or "") or None
                gateway_token = str(first.get("gateway_token") or "") or None
                interop_token = str(first.get("interop_token") or "") or None
            if gateway_token is not None:
                identity = self._gateway(gateway_token, first.get("caller"))
            elif interop_token is not None:
                identity = self._interop(
                    interop_token, first.get("protocol"), first.get("caller"), first.get("name")
                )
                interop_protocol = str(first["protocol"])
            else:
                identity = await self._authenticate(token, cert)
        except DomainError as exc:
            await socket.send_json({"type": "error", **exc.as_dict()})
            await socket.close(code=CLOSE_UNAUTHENTICATED, reason=exc.reason[:120])
            return
        except (WebSocketDisconnect, RuntimeError, ValueError):
            return
        conn = Connection(
            socket,
            identity,
            token,
            cert,
            gateway_token=gateway_token,
            interop_token=interop_token,
            interop_protocol=interop_protocol,
        )
        self.connections[conn.participant_id] = conn
        log.info("signaling connection %s for account %s", conn.participant_id, identity.account_id)
        await conn.send(
            {
                "type": "hello",
                "account_id": identity.account_id,
                "display_name": identity.display_name,
            }
        )
        try:
            while not conn.closed:
                try:
                    message = await socket.receive_json()
                except ValueError:
                    await conn.send(
                        {"type": "error", "error": "Invalid", "field": None, "reason": "not JSON"}
                    )
                    continue
                try:
                    if conn.gateway_token is not None:
                        caller = conn.identity.account_id.removeprefix(f"{PSTN}:")
                        conn.identity = self._gateway(conn.gateway_token, caller)
                    elif conn.interop_token is not None:
                        self._interop_token_valid(conn.interop_token)
                    else:
                        conn.identity = await self._authenticate(conn.token, conn.cert)
                except DomainError as exc:
                    await self._leave(conn)
                    await conn.send({"type": "error", **exc.as_dict()})
                    await conn.close(CLOSE_UNAUTHENTICATED, exc.reason)
                    return
                try:
                    await self._dispatch(conn, message)
                except DomainError as exc:
                    await conn.send({"type": "error", **exc.as_dict()})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            conn.closed = True
            self.connections.pop(conn.participant_id, None)
            await self._leave(conn)

    async def _authenticate(self, token: str | None, cert: str | None) -> Identity:
        now = self.clock.now()
        return await self.in_tx(lambda s: accounts.authenticate(s, token, cert, now))

    async def _dispatch(self, conn: Connection, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Invalid("a message is a JSON object with a type", field="type")
        kind = message["type"]
        if kind == "ping":
            await conn.send({"type": "pong"})
            return
        if kind == "join":
            await self._join(conn, message)
            return
        if kind == "leave":
            await self._leave(conn)
            return
        live = self.live.get(conn.conference_id or "")
        if live is None:
            raise Forbidden("join a conference first", field="type")
        async with live.lock:
            await self._in_conference(conn, live, kind, message)

    async def _in_conference(
        self, conn: Connection, live: LiveConference, kind: str, message: dict[str, Any]
    ) -> None:
        pid = conn.participant_id
        lobby = live.lobby
        if pid not in lobby.participants and kind != "leave":
            raise Forbidden("you are waiting in the lobby", field="type")
        if kind == "admit":
            await self._run(live, lobby.handle(Admit(pid, _string(message, "participant_id"))))
        elif kind == "reject":
            await self._run(live, lobby.handle(Reject(pid, _string(message, "participant_id"))))
        elif kind == "lock":
            locked = message.get("locked")
            if not isinstance(locked, bool):
                raise Invalid("locked must be true or false", field="locked")
            actions = lobby.handle(SetLock(pid, locked))
            await self.in_tx(lambda s: _set_locked(s, live.conference_id, locked))
            await self._run(live, actions)
        elif kind == "mute":
            await self._run(live, moderation.mute(lobby, pid, _string(message, "target")))
        elif kind == "remove":
            await self._run(live, moderation.remove(lobby, pid, _string(message, "target")))
        elif kind == "media":
            audio, video = message.get("audio"), message.get("video")
            for name, value in (("audio", audio), ("video", video)):
                if value is not None and not isinstance(value, bool):
                    raise Invalid("must be true or false", field=name)
            await self._run(live, moderation.set_own_media(lobby, pid, audio, video))
        elif kind == "chat":
            enabled = await self.in_tx(
                lambda s: _enterprise_flag(s, live.enterprise_id, "chat_enabled")
            )
            now = self.clock.now()
            actions = live.chat.post(
                lobby, pid, message.get("text"), message.get("to"), chat_enabled=enabled, now=now
            )
            await self._run(live, actions)
        elif kind == "record":
            await self._record(conn, live, recording.validate_action(message.get("action")))
        elif kind == "stream":
            await self._stream(conn, live, recording.validate_action(message.get("action")))
        elif kind == "end":
            lobby.moderator(pid)
            await self._end(live)
        else:
            raise Invalid(f"unknown message type {kind!r}", field="type")

    # -- joining and leaving ----------------------------------------------------------------

    async def _join(self, conn: Connection, message: dict[str, Any]) -> None:
        if conn.conference_id is not None:
            raise Invalid("leave the current conference first", field="conference_id")
        conference_id = _string(message, "conference_id")
        identity = conn.identity
        conference = await self.in_tx(
            lambda s: conferences.check_join(
                s, identity, conference_id, message.get("password"), self.region
            )
        )
        live = self.live.get(conference.id)
        if live is None or live.ended:
            live = LiveConference(
                conference.id,
                conference.enterprise_id,
                conference.owner_id,
                Lobby(conference.id, locked=conference.locked, escalation=conference.escalation),
            )
            self.live[conference.id] = live
            log.info("conference %s live in region %s", conference.id, self.region)
        async with live.lock:
            if live.ended:
                raise Forbidden("the conference has ended", field="conference_id")
            event = Join(
                conn.participant_id,
                identity.account_id,
                identity.display_name,
                moderator=identity.account_id == conference.owner_id,
                permissions=identity.permissions,
                encrypted=conn.gateway_token is None,
            )
            actions = live.lobby.handle(event)
            conn.conference_id = conference.id
            await self._run(live, actions)

    async def _leave(self, conn: Connection) -> None:
        live = self.live.get(conn.conference_id or "")
        conn.conference_id = None
        if live is None:
            return
        async with live.lock:
            if live.ended:
                return
            await self._run(live, live.lobby.handle(Leave(conn.participant_id)))
            if not live.lobby.participants and not live.lobby.waiting and not live.ended:
                await self._end(live)

    # -- actions ----------------------------------------------------------------------------

    async def _run(self, live: LiveConference, actions: list[Action]) -> None:
        """Carry out the lobby's actions (called with the conference lock held)."""
        for action in actions:
            if isinstance(action, Send):
                conn = self.connections.get(action.to)
                if conn is not None:
                    await conn.send(action.message)
            elif isinstance(action, Close):
                conn = self.connections.get(action.participant_id)
                if conn is not None:
                    conn.conference_id = None
                    await conn.close(action.code, action.reason)
            elif isinstance(action, Admitted):
                await self._admitted(live, action)
            elif isinstance(action, Departed):
                await self._departed(live, action)
            elif isinstance(action, Emptied):
                await self._end(live)

    async def _admitted(self, live: LiveConference, action: Admitted) -> None:
        now = self.clock.now()
        conn = self.connections.get(action.participant_id)
        pstn = conn is not None and conn.gateway_token is not None
        interop = conn.interop_protocol if conn is not None else None

        def open_leg(s: Session) -> int:
            if live.call_id is None:
                live.call_id = cdr.open_call(
                    s, live.enterprise_id, live.conference_id, self.region, now
                )
                s.flush()
            if live.recording_id is not None:
                recording.add_participant(s, live.recording_id, action.account_id)
            if pstn:
                return cdr.open_leg(s, live.call_id, action.account_id, now, False, PSTN_TRANSPORT)
            if interop is not None:
                transport = INTEROP_TRANSPORTS[interop]
                return cdr.open_leg(s, live.call_id, action.account_id, now, True, transport)
            return cdr.open_leg(s, live.call_id, action.account_id, now)

        live.legs[action.participant_id] = await self.in_tx(open_leg)
        if conn is None:
            return
        for notice in (live.recording_notice, live.streaming_notice):
            if notice is not None:
                await conn.send(notice)
        for send in live.chat.history_for(action.participant_id):
            if isinstance(send, Send):
                await conn.send(send.message)
        keys = await self.media_keys.issue(live.conference_id, action.participant_id)
        if keys is not None and action.participant_id in live.lobby.participants:
            await conn.send({**keys, "type": "media.keys", "participant_id": action.participant_id})

    async def _departed(self, live: LiveConference, action: Departed) -> None:
        leg = live.legs.pop(action.participant_id, None)
        await self.media_keys.withdraw(live.conference_id, action.participant_id, rekey=True)
        if leg is not None:
            now = self.clock.now()
            await self.in_tx(lambda s: cdr.close_leg(s, leg, now))

    async def end_conference(self, conference_id: str) -> bool:
        """End a live conference from the REST API; False when it was not live."""
        live = self.live.get(conference_id)
        if live is None:
            return False
        async with live.lock:
            await self._end(live)
        return True

    async def _end(self, live: LiveConference) -> None:
        """End the session: tell everyone, close sockets, drop chat, close CDR and recording."""
        if live.ended:
            return
        live.ended = True
        live.chat.close()
        everyone = [*live.lobby.participants, *live.lobby.waiting]
        for pid in everyone:
            conn = self.connections.get(pid)
            if conn is not None:
                conn.conference_id = None
                await conn.send({"type": "conference.ended", "conference_id": live.conference_id})
                await conn.close(CLOSE_ENDED, "the conference has ended")
            await self.media_keys.withdraw(live.conference_id, pid, rekey=False)
        live.lobby.participants.clear()
        live.lobby.waiting.clear()
        now = self.clock.now()

        def close(s: Session) -> None:
            if live.recording_id is not None:
                recording.stop(s, self.storage, live.recording_id, now)
            if live.call_id is not None:
                cdr.close_call(s, live.call_id, now)
            conferences.finish(s, live.conference_id)

        await self.in_tx(close)
        if self.live.get(live.conference_id) is live:
            del self.live[live.conference_id]
        log.info("conference %s ended", live.conference_id)

    # -- recording and streaming ------------------------------------------------------------

    async def _record(self, conn: Connection, live: LiveConference, action: str) -> None:
        identity = conn.identity
        if action == "start":
            if live.recording_id is not None:
                raise Invalid("the conference is already being recorded", field="action")
            accounts_in = [p.account_id for p in live.lobby.participants.values()]
            now = self.clock.now()

            def start(s: Session) -> str:
                conference = conferences.locate(s, live.conference_id, self.region)
                return recording.start(s, self.storage, identity, conference, accounts_in, now).id

            live.recording_id = await self.in_tx(start)
            live.recording_notice = _notice(
                "recording.started",
                identity,
                f"This call is being recorded by {identity.display_name}",
                now,
            ) | {"recording_id": live.recording_id}
            log.info("recording %s started in %s", live.recording_id, live.conference_id)
            await self._run(live, live.lobby.broadcast(live.recording_notice))
            return
        if live.recording_id is None:
            raise Invalid("the conference is not being recorded", field="action")
        recording_id = live.recording_id
        starter = (live.recording_notice or {}).get("by_account_id")
        if (
            identity.account_id != starter
            and not live.lobby.participants[conn.participant_id].moderator
        ):
            raise Forbidden("only the recorder or a moderator stops the recording", field="action")
        now = self.clock.now()
        await self.in_tx(lambda s: recording.stop(s, self.storage, recording_id, now))
        live.recording_id, live.recording_notice = None, None
        notice = _notice(
            "recording.stopped", identity, f"{identity.display_name} stopped the recording", now
        )
        await self._run(live, live.lobby.broadcast(notice | {"recording_id": recording_id}))

    async def _stream(self, conn: Connection, live: LiveConference, action: str) -> None:
        identity = conn.identity
        if identity.account_id != live.owner_id:
            raise Forbidden("only the conference's creator live streams it", field="action")
        enabled = await self.in_tx(
            lambda s: _enterprise_flag(s, live.enterprise_id, "live_streaming_enabled")
        )
        if not enabled:
            raise Forbidden("the administrator has not enabled live streaming", field="action")
        identity.require(perms.LIVE_STREAM)
        if action == "start":
            live.streaming_notice = _notice(
                "streaming.started",
                identity,
                f"This call is being live streamed by {identity.display_name}",
                self.clock.now(),
            )
            await self._run(live, live.lobby.broadcast(live.streaming_notice))
        else:
            live.streaming_notice = None
            notice = _notice(
                "streaming.stopped", identity, "Live streaming stopped", self.clock.now()
            )
            await self._run(live, live.lobby.broadcast(notice))


def _notice(kind: str, identity: Identity, text: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "type": "notice",
        "kind": kind,
        "by": identity.display_name,
        "by_account_id": identity.account_id,
        "text": text,
        "at": at.isoformat(),
    }


def _string(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Invalid(f"{name} is required", field=name)
    return value


def _set_locked(session: Session, conference_id: str, locked: bool) -> None:
    conference = session.get(Conference, conference_id)
    if conference is not None:
        conference.locked = locked


def _enterprise_flag(session: Session, enterprise_id: str, name: str) -> bool:
    enterprise = session.get(Enterprise, enterprise_id)
    return bool(enterprise is not None and getattr(enterprise, name))
