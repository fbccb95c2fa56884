"""The WSS signaling endpoint: the transport of the live conferences (MT-06, MT-09, MT-16, MT-17,
MT-18).

It authenticates sockets (`signaling_auth`), turns their messages into events of each conference's
`ConferenceSession` and carries out the actions the session returns: messages to participants,
closed sockets, media keys from the `MediaKeyHook`, and the rows the `ConferenceStore` writes. The
rules of the call (lobby, roster, chat, moderation, recording, streaming, leg kinds) are all in the
session; nothing here decides who may do what.

Live conferences exist only in this process's memory; chat never leaves it. Every incoming message
re-checks the sender's sign-in, so a revoked account is cut off at once. When a participant departs,
the hook re-keys the others, and a supervised hook moves calls to another relay when one fails
(MT-03, through `push`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

from fastapi import WebSocket, WebSocketDisconnect

from protocol import signaling as wire
from protocol.errors import ErrorCode
from protocol.signaling import MessageType, RecordAction
from services.common.asgi_tls import peer_cert_pem
from services.common.clock import Clock
from services.common.errors import DomainError, Forbidden, Invalid, Unauthenticated
from services.meeting.api.media_keys import MediaKeyHook, NoMediaKeys
from services.meeting.api.signaling_auth import SignIn, SocketAuthenticator, bearer
from services.meeting.domain import permissions as perms
from services.meeting.domain import recording
from services.meeting.domain.accounts import Identity
from services.meeting.domain.ids import new_id
from services.meeting.domain.session import ConferenceSession
from services.meeting.domain.session_io import (
    Action,
    AddRecordingParticipant,
    Admit,
    Chat,
    Close,
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
    Send,
    SetMedia,
    StartRecording,
    StopRecording,
    StreamStart,
    StreamStop,
    Terminate,
    WithdrawKeys,
)
from services.meeting.media.recorder import Recorders
from services.meeting.store.conference_store import ConferenceStore

log = logging.getLogger("roomtrust.meeting.signaling")

CLOSE_UNAUTHENTICATED = wire.SignalingClose.UNAUTHENTICATED
IN_CONFERENCE_WITH_POLICY = (MessageType.CHAT, MessageType.RECORD, MessageType.STREAM)


@dataclass(eq=False)
class Connection:
    socket: WebSocket
    identity: Identity
    sign_in: SignIn
    participant_id: str = field(default_factory=lambda: f"p-{secrets.token_hex(8)}")
    conference_id: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    async def send(self, message: wire.Message | dict[str, Any]) -> None:
        """Send a typed message (or one already encoded, as the media hook's are)."""
        if self.closed:
            return
        body = message.encode() if isinstance(message, wire.Message) else message
        async with self.lock:
            try:
                await self.socket.send_json(body)
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
    """A session and the lock that keeps its events (and their actions) in order."""

    session: ConferenceSession
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def conference_id(self) -> str:
        return self.session.conference_id


class Signaling:
    def __init__(
        self,
        *,
        region: str,
        store: ConferenceStore,
        clock: Clock,
        media_keys: MediaKeyHook | None = None,
        pstn_token_file: Path | None = None,
        interop_token_file: Path | None = None,
    ) -> None:
        self.region = region
        self.store = store
        self.clock = clock
        self.media_keys: MediaKeyHook = media_keys or NoMediaKeys()
        self.auth = SocketAuthenticator(store, pstn_token_file, interop_token_file)
        self.live: dict[str, LiveConference] = {}
        self.connections: dict[str, Connection] = {}
        # recording: the region's recorders join the relay with keys of their own (MT-16)
        self.recorders = Recorders(self.media_keys, store.append_recording_media)

    # -- what the REST API and the media hook ask -------------------------------------------

    def is_live(self, conference_id: str) -> bool:
        live = self.live.get(conference_id)
        return live is not None and not live.session.ended

    def live_count(self, enterprise_id: str | None = None) -> int:
        return sum(
            1
            for c in self.live.values()
            if enterprise_id in (None, c.session.enterprise_id) and not c.session.ended
        )

    async def close_account(self, account_id: str, reason: str) -> int:
        """Close every signaling socket of an account (revocation); returns how many."""
        victims = [c for c in self.connections.values() if c.identity.account_id == account_id]
        for conn in victims:
            await self._leave(conn)
            await conn.send(wire.Error(ErrorCode.UNAUTHENTICATED, None, reason))
            await conn.close(CLOSE_UNAUTHENTICATED, reason)
        return len(victims)

    async def push(self, participant_id: str, message: dict[str, Any]) -> None:
        """Send a participant still in a conference a message (new keys, a media move)."""
        if self.recorders.deliver(participant_id, message):
            return
        conn = self.connections.get(participant_id)
        if conn is not None and conn.conference_id is not None:
            await conn.send(message)

    async def reconfigure(
        self, conference_id: str, locked: bool | None, escalation: bool | None
    ) -> None:
        """An administrator changed the lock or escalation of a conference (already stored)."""
        live = self.live.get(conference_id)
        if live is not None:
            async with live.lock:
                await self._apply(live, Reconfigure(locked, escalation))

    async def end_conference(self, conference_id: str) -> bool:
        """End a live conference from the REST API; False when it was not live (or had ended
        by the time its lock was free)."""
        live = self.live.get(conference_id)
        if live is None:
            return False
        async with live.lock:
            if live.session.ended:
                return False
            await self._apply(live, Terminate())
        return True

    # -- the socket -------------------------------------------------------------------------

    async def serve(self, socket: WebSocket) -> None:
        token = bearer(socket)
        cert = peer_cert_pem(socket.scope)
        await socket.accept()
        try:
            first: dict[str, Any] | None = None
            if token is None and cert is None:
                message = await socket.receive_json()
                if not isinstance(message, dict) or message.get("type") != MessageType.AUTH:
                    raise Unauthenticated("authenticate first: {type: auth, token}")
                first = message
            identity, sign_in = await self.auth.sign_in(token, cert, first)
        except DomainError as exc:
            await socket.send_json(_error(exc).encode())
            await socket.close(code=CLOSE_UNAUTHENTICATED, reason=exc.reason[:120])
            return
        except (WebSocketDisconnect, RuntimeError, ValueError):
            return
        conn = Connection(socket, identity, sign_in)
        self.connections[conn.participant_id] = conn
        log.info("signaling connection %s for account %s", conn.participant_id, identity.account_id)
        await conn.send(wire.Hello(identity.account_id, identity.display_name))
        try:
            await self._listen(conn)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            conn.closed = True
            self.connections.pop(conn.participant_id, None)
            await self._leave(conn)

    async def _listen(self, conn: Connection) -> None:
        while not conn.closed:
            try:
                message = await conn.socket.receive_json()
            except ValueError:
                await conn.send(wire.Error(ErrorCode.INVALID, None, "not JSON"))
                continue
            try:
                conn.identity = await self.auth.again(conn.sign_in, conn.identity)
            except DomainError as exc:
                await self._leave(conn)
                await conn.send(_error(exc))
                await conn.close(CLOSE_UNAUTHENTICATED, exc.reason)
                return
            try:
                await self._dispatch(conn, message)
            except DomainError as exc:
                await conn.send(_error(exc))

    async def _dispatch(self, conn: Connection, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Invalid("a message is a JSON object with a type", field="type")
        kind = message["type"]
        if kind == MessageType.PING:
            await conn.send(wire.Pong())
            return
        if kind == MessageType.JOIN:
            await self._join(conn, message)
            return
        if kind == MessageType.LEAVE:
            await self._leave(conn)
            return
        live = self.live.get(conn.conference_id or "")
        if live is None:
            raise Forbidden("join a conference first", field="type")
        async with live.lock:
            live.session.require_admitted(conn.participant_id)
            event = await self._event(conn, live, kind, message)
            await self._apply(live, event)

    async def _event(
        self, conn: Connection, live: LiveConference, kind: str, message: dict[str, Any]
    ) -> Event:
        """The session event an in-conference message asks for (its fields checked)."""
        pid = conn.participant_id
        if kind == MessageType.ADMIT:
            return Admit(pid, _string(message, "participant_id"))
        if kind == MessageType.REJECT:
            return Reject(pid, _string(message, "participant_id"))
        if kind == MessageType.LOCK:
            locked = message.get("locked")
            if not isinstance(locked, bool):
                raise Invalid("locked must be true or false", field="locked")
            return Lock(pid, locked)
        if kind == MessageType.MUTE:
            return Mute(pid, _string(message, "target"))
        if kind == MessageType.REMOVE:
            return Remove(pid, _string(message, "target"))
        if kind == MessageType.MEDIA:
            audio, video = message.get("audio"), message.get("video")
            for name, value in (("audio", audio), ("video", video)):
                if value is not None and not isinstance(value, bool):
                    raise Invalid("must be true or false", field=name)
            return SetMedia(pid, audio, video)
        if kind == MessageType.END:
            return End(pid)
        if kind not in IN_CONFERENCE_WITH_POLICY:
            raise Invalid(f"unknown message type {kind!r}", field="type")
        now = self.clock.now()
        chat = kind == MessageType.CHAT
        action = None if chat else recording.validate_action(message.get("action"))
        policy = await self.store.policy(live.session.enterprise_id)
        permissions = conn.identity.permissions
        if chat:
            return Chat(pid, message.get("text"), message.get("to"), policy.chat_enabled, now)
        if kind == MessageType.RECORD:
            if action == RecordAction.START:
                if policy.recording_enabled and perms.RECORD in permissions:
                    await self.store.check_recording_quota(conn.identity.account_id)
                return RecordStart(pid, new_id(), permissions, policy.recording_enabled, now)
            return RecordStop(pid, now)
        streaming = policy.live_streaming_enabled
        if action == RecordAction.START:
            return StreamStart(pid, permissions, streaming, now)
        return StreamStop(pid, permissions, streaming, now)

    # -- joining and leaving ----------------------------------------------------------------

    async def _join(self, conn: Connection, message: dict[str, Any]) -> None:
        if conn.conference_id is not None:
            raise Invalid("leave the current conference first", field="conference_id")
        conference_id = _string(message, "conference_id")
        identity = conn.identity
        conference = await self.store.check_join(identity, conference_id, message.get("password"))
        live = self.live.get(conference.conference_id)
        if live is None or live.session.ended:
            session = ConferenceSession.open(
                conference.conference_id,
                conference.enterprise_id,
                conference.owner_id,
                call_id=new_id(),
                locked=conference.locked,
                escalation=conference.escalation,
            )
            live = LiveConference(session)
            self.live[conference.conference_id] = live
            log.info("conference %s live in region %s", conference.conference_id, self.region)
        async with live.lock:
            event = Join(
                conn.participant_id,
                identity.account_id,
                identity.display_name,
                identity.permissions,
                conn.sign_in.leg,
            )
            actions = live.session.handle(event)
            conn.conference_id = conference.conference_id
            await self._carry_out(live, actions)

    async def _leave(self, conn: Connection) -> None:
        live = self.live.get(conn.conference_id or "")
        conn.conference_id = None
        if live is None:
            return
        async with live.lock:
            await self._apply(live, Leave(conn.participant_id))

    # -- actions ----------------------------------------------------------------------------

    async def _apply(self, live: LiveConference, event: Event) -> None:
        """Feed the session an event and carry out its actions (with the conference lock held)."""
        await self._carry_out(live, live.session.handle(event))

    async def _carry_out(self, live: LiveConference, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(to=to, message=message):
                    conn = self.connections.get(to)
                    if conn is not None:
                        await conn.send(message)
                case Close(participant_id=pid, code=code, reason=reason):
                    conn = self.connections.get(pid)
                    if conn is not None:
                        conn.conference_id = None
                        await conn.close(code, reason)
                case PersistLock(conference_id=conference_id, locked=locked):
                    await self.store.persist_lock(conference_id, locked)
                case IssueKeys(participant_id=pid):
                    await self._issue_keys(live, pid)
                case WithdrawKeys(participant_id=pid, rekey=rekey):
                    await self.media_keys.withdraw(live.conference_id, pid, rekey=rekey)
                case OpenCall(call_id=call_id, conference_id=conference_id, enterprise_id=ent):
                    await self.store.open_call(call_id, ent, conference_id)
                case OpenLeg():
                    leg_id = await self.store.open_leg(
                        action.call_id, action.account_id, action.encrypted, action.transport
                    )
                    await self._apply(live, LegOpened(action.participant_id, leg_id))
                case CloseLeg(leg_id=leg_id):
                    await self.store.close_leg(leg_id)
                case CloseCall(call_id=call_id):
                    await self.store.close_call(call_id)
                case StartRecording():
                    await self.store.start_recording(
                        action.recording_id,
                        action.conference_id,
                        action.recorder_id,
                        action.participant_account_ids,
                    )
                    log.info("recording %s started in %s", action.recording_id, live.conference_id)
                    await self.recorders.start(action.recording_id, action.conference_id)
                case AddRecordingParticipant(recording_id=recording_id, account_id=account_id):
                    await self.store.add_recording_participant(recording_id, account_id)
                case StopRecording(recording_id=recording_id):
                    await self.recorders.stop(recording_id)  # its last audio before the trailer
                    await self.store.stop_recording(recording_id)
                case FinishConference(conference_id=conference_id):
                    await self.store.finish(conference_id)
                    if self.live.get(conference_id) is live:
                        del self.live[conference_id]
                    log.info("conference %s ended", conference_id)
                case _:
                    assert_never(action)

    async def _issue_keys(self, live: LiveConference, participant_id: str) -> None:
        conn = self.connections.get(participant_id)
        if conn is None:
            return
        keys = await self.media_keys.issue(live.conference_id, participant_id)
        if keys is not None and live.session.is_admitted(participant_id):
            await conn.send(wire.MediaKeys(participant_id, keys))


def _error(exc: DomainError) -> wire.Error:
    return wire.Error(exc.code, exc.field, exc.reason)


def _string(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Invalid(f"{name} is required", field=name)
    return value
