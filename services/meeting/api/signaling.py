"""The WSS signaling endpoint: the transport of the live conferences (MT-06, MT-09, MT-16, MT-17,
MT-18).

It authenticates sockets (`signaling_auth`), turns their messages into events of each conference's
`ConferenceSession` and carries out the actions the session returns: messages to participants,
closed sockets, media keys from the `MediaKeyHook`, and the rows the `ConferenceStore` writes. The
rules of the call (lobby, roster, chat, moderation, recording, streaming, leg kinds) are all in the
session; nothing here decides who may do what.

In a single process (the embedded region), live conferences exist only in this process's memory
and chat never leaves it. In a replicated region (`replication`: PostgreSQL and NATS), each live
conference has one owner replica that runs its session; a socket held by another replica has its
messages forwarded to the owner on the bus and hears back on its own subject, chat only in flight
(docs/meeting-replicas.md). When the owner dies, the next replica that needs the conference (or
its lease loop) takes it over from the snapshot in PostgreSQL. Every incoming message
re-checks the sender's sign-in, so a revoked account is cut off at once. When a participant departs,
the hook re-keys the others, and a supervised hook moves calls to another relay when one fails
(MT-03, through `push`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Coroutine
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
from services.meeting.api.bus import Unreachable
from services.meeting.api.media_keys import MediaKeyHook, NoMediaKeys, RefreshableMedia
from services.meeting.api.replication import (
    RENEW_SECONDS,
    RemoteParticipant,
    Replication,
    conference_body,
    conference_from,
    identity_body,
    identity_from,
)
from services.meeting.api.signaling_auth import SignIn, SocketAuthenticator, bearer
from services.meeting.domain import permissions as perms
from services.meeting.domain import recording
from services.meeting.domain.accounts import Identity
from services.meeting.domain.ids import new_id
from services.meeting.domain.legs import LegKind
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
from services.meeting.store.conference_store import ConferenceStore, JoinableConference
from services.meeting.store.replica_store import LEASE_SECONDS

log = logging.getLogger("roomtrust.meeting.signaling")

CLOSE_UNAUTHENTICATED = wire.SignalingClose.UNAUTHENTICATED
RESUME_GRACE = 10.0  # seconds a dropped resumable participant keeps its place
UNSUBSCRIBE_DELAY = 1.0  # after a conference ends, before its bus subject is let go
_BACKGROUND: set[asyncio.Future[None]] = set()
# what a replica asks a conference's owner on the bus
ENTER, EXIT, MESSAGE, REJOIN, DROPPED = "enter", "exit", "message", "rejoin", "dropped"
PRESENT = "present"  # a former owner hands over a socket it holds: no grace for that participant
# an owner acts on a conference only while it knows its lease holds: until this long after it
# asked for the lease (the database's `now()` is no earlier than the asking), less a margin
LEASE_MARGIN = 0.15
IN_CONFERENCE_WITH_POLICY = (MessageType.CHAT, MessageType.RECORD, MessageType.STREAM)


class Moved(Exception):
    """This replica's lease on a conference lapsed and another replica took it over: the event
    was not applied here (the caller hands it to the new owner)."""


@dataclass(eq=False)
class Connection:
    socket: WebSocket
    identity: Identity
    sign_in: SignIn
    participant_id: str = field(default_factory=lambda: f"p-{secrets.token_hex(8)}")
    conference_id: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False
    remote: bool = False  # its conference is run by another replica
    resumable: bool = False  # it holds a resume token: a drop keeps its place for a while
    subscription: Any = None  # its participant subject on the bus (replicated region)

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
    saved: str = ""  # the snapshot last written (replicated region)
    resume: dict[str, str] = field(default_factory=dict)  # participant -> its token's digest
    absent: set[str] = field(default_factory=set)  # dropped, their place kept until the grace
    grace: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    subscription: Any = None  # its conference subject on the bus (replicated region)
    lease_until: float = 0.0  # event-loop time until which this replica's lease surely holds

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
        replication: Replication | None = None,
    ) -> None:
        self.region = region
        self.store = store
        self.clock = clock
        self.media_keys: MediaKeyHook = media_keys or NoMediaKeys()
        self.auth = SocketAuthenticator(store, pstn_token_file, interop_token_file)
        self.live: dict[str, LiveConference] = {}
        self.connections: dict[str, Connection | RemoteParticipant] = {}
        self.replication = replication
        # a replicated region: the conferences every owner runs (conference -> enterprise), as
        # the lease loop last read them
        self.region_live: dict[str, str] = {}
        # recording: the region's recorders join the relay with keys of their own (MT-16)
        self.recorders = Recorders(self.media_keys, store.append_recording_media)

    # -- what the REST API and the media hook ask -------------------------------------------

    def is_live(self, conference_id: str) -> bool:
        live = self.live.get(conference_id)
        if live is None:
            return conference_id in self.region_live
        return not live.session.ended

    def live_count(self, enterprise_id: str | None = None) -> int:
        here = {
            c.conference_id: c.session.enterprise_id
            for c in self.live.values()
            if not c.session.ended
        }
        everywhere = {**self.region_live, **here}
        return sum(1 for e in everywhere.values() if enterprise_id in (None, e))

    async def close_account(self, account_id: str, reason: str) -> int:
        """Close every signaling socket of an account (revocation); returns how many."""
        victims = [
            c
            for c in self.connections.values()
            if isinstance(c, Connection) and c.identity.account_id == account_id
        ]
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
        elif conn is None and self.replication is not None:
            bus = self.replication.bus
            await bus.publish(bus.participant_subject(participant_id), {"send": message})

    async def reconfigure(
        self, conference_id: str, locked: bool | None, escalation: bool | None
    ) -> None:
        """An administrator changed the lock or escalation of a conference (already stored)."""
        live = self.live.get(conference_id)
        if live is None:
            body = {"kind": "reconfigure", "locked": locked, "escalation": escalation}
            await self._ask_owner(conference_id, body)
            live = self.live.get(conference_id)  # taken over meanwhile: it is this replica's now
            if live is None:
                return
        async with live.lock:
            await self._apply(live, Reconfigure(locked, escalation))

    async def end_conference(self, conference_id: str) -> bool:
        """End a live conference from the REST API; False when it was not live (or had ended
        by the time its lock was free)."""
        live = self.live.get(conference_id)
        if live is None:
            answer = await self._ask_owner(conference_id, {"kind": "terminate"})
            live = self.live.get(conference_id)
            if live is None:
                return bool(answer.get("ended"))
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
            if self.connections.get(conn.participant_id) is conn:
                del self.connections[conn.participant_id]
            if conn.resumable and conn.conference_id is not None:
                await self._drop(conn)
            else:
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
            try:
                await self._join(conn, message)
            except Moved:
                conn.conference_id = None
                raise Forbidden("the conference moved; join again", field="type") from None
            return
        if kind == MessageType.LEAVE:
            await self._leave(conn)
            return
        if kind == MessageType.RESUME:
            await self._resume(conn, message)
            return
        if conn.remote:
            await self._forward(conn, MESSAGE, message)
            return
        try:
            await self._in_conference(conn, message)
        except Moved:
            if not conn.remote:
                raise Forbidden("the conference moved; send it again", field="type") from None
            await self._forward(conn, MESSAGE, message)

    async def _in_conference(self, conn: Connection | RemoteParticipant, message: Any) -> None:
        kind = message["type"]
        live = self.live.get(conn.conference_id or "")
        if live is None:
            raise Forbidden("join a conference first", field="type")
        async with live.lock:
            live.session.require_admitted(conn.participant_id)
            event = await self._event(conn, live, kind, message)
            await self._apply(live, event)

    async def _event(
        self,
        conn: Connection | RemoteParticipant,
        live: LiveConference,
        kind: str,
        message: dict[str, Any],
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
        if conn.identity is None:
            raise Unauthenticated("sign in again")
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
        token = secrets.token_urlsafe(24) if message.get("resumable") is True else None
        digest = None if token is None else _digest(token)
        if self.replication is not None and not await self._owns(conference.conference_id):
            conn.conference_id = conference.conference_id
            conn.remote = True
            await self._attach(conn)
            await self._forward(conn, ENTER, {"resume": digest}, conference)
        else:
            if self.replication is not None:
                await self._attach(conn)
            await self._join_session(conn, conference, identity, conn.sign_in.leg, digest)
        if token is not None and conn.conference_id is not None:
            conn.resumable = True
            await conn.send(wire.ResumeToken(conference.conference_id, conn.participant_id, token))

    async def _join_session(
        self,
        conn: Connection | RemoteParticipant,
        conference: JoinableConference,
        identity: Identity,
        leg: LegKind,
        resume_digest: str | None = None,
    ) -> None:
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
            await self._serve_conference(live)
            log.info("conference %s live in region %s", conference.conference_id, self.region)
        async with live.lock:
            event = Join(
                conn.participant_id,
                identity.account_id,
                identity.display_name,
                identity.permissions,
                leg,
            )
            actions = live.session.handle(event)
            conn.conference_id = conference.conference_id
            if resume_digest is not None:
                live.resume[conn.participant_id] = resume_digest
            await self._carry_out(live, actions)

    async def _leave(self, conn: Connection | RemoteParticipant) -> None:
        if isinstance(conn, Connection) and conn.remote and conn.conference_id is not None:
            with contextlib.suppress(DomainError):
                await self._forward(conn, EXIT, None)
        live = self.live.get(conn.conference_id or "")
        conn.conference_id = None
        if isinstance(conn, Connection):
            conn.remote = False
            await self._detach(conn)
        if live is None:
            return
        async with live.lock:
            try:
                await self._apply(live, Leave(conn.participant_id))
            except Moved:
                if not isinstance(conn, Connection):
                    raise  # the replica that asked hands the leave to the new owner
                conn.conference_id, conn.remote = live.conference_id, True
                with contextlib.suppress(DomainError):
                    await self._forward(conn, EXIT, None)
                conn.conference_id, conn.remote = None, False

    # -- actions ----------------------------------------------------------------------------

    async def _apply(self, live: LiveConference, event: Event) -> None:
        """Feed the session an event and carry out its actions (with the conference lock held),
        only while this replica's lease holds (`Moved` otherwise)."""
        await self._hold_lease(live)
        await self._carry_out(live, live.session.handle(event))

    async def _carry_out(self, live: LiveConference, actions: list[Action]) -> None:
        await self._carry_out_actions(live, actions)
        await self._save(live)

    async def _carry_out_actions(self, live: LiveConference, actions: list[Action]) -> None:
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
                    await self._release(live)
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

    # -- resuming a place after a dropped socket ----------------------------------------------

    async def _resume(self, conn: Connection, message: dict[str, Any]) -> None:
        """A new socket takes back the place of a participant whose socket dropped."""
        if conn.conference_id is not None:
            raise Invalid("leave the current conference first", field="conference_id")
        conference_id = _string(message, "conference_id")
        participant_id = _string(message, "participant_id")
        digest = _digest(_string(message, "token"))
        relay = message.get("relay") if isinstance(message.get("relay"), str) else None
        fresh_id = conn.participant_id
        self._rename(conn, participant_id)
        conn.conference_id = conference_id
        try:
            if self.replication is not None:
                # also when this replica owns the conference: should it lose it, the new owner
                # reaches this socket on the bus
                await self._attach(conn)
            if self.replication is not None and conference_id not in self.live:
                owner = await self.replication.store.owner(conference_id)
                if owner is None:
                    raise Forbidden("the conference is not live", field="conference_id")
                mine = owner.replica_id == self.replication.replica_id
                if not mine and (owner.lease_valid or not await self._take_over(conference_id)):
                    conn.remote = True
                    await self._forward(conn, REJOIN, {"digest": digest, "relay": relay})
                    conn.resumable = True
                    return
            await self._rejoin_here(conference_id, conn, digest, relay)
            conn.resumable = True
        except DomainError:
            conn.conference_id = None
            conn.remote = False
            await self._detach(conn)
            self._rename(conn, fresh_id)
            raise

    def _rename(self, conn: Connection, participant_id: str) -> None:
        if self.connections.get(conn.participant_id) is conn:
            del self.connections[conn.participant_id]
        conn.participant_id = participant_id
        self.connections[participant_id] = conn

    async def _rejoin_here(
        self,
        conference_id: str,
        conn: Connection | RemoteParticipant,
        digest: str,
        relay: str | None = None,
    ) -> None:
        live = self.live.get(conference_id)
        if live is None or live.session.ended:
            raise Forbidden("the conference is not live", field="conference_id")
        pid = conn.participant_id
        async with live.lock:
            expected = live.resume.get(pid)
            if expected is None or not hmac.compare_digest(expected, digest):
                raise Forbidden("the resume token does not match", field="token")
            lobby = live.session.lobby
            person = lobby.participants.get(pid) or lobby.waiting.get(pid)
            if person is None or conn.identity is None:
                raise Forbidden("that place is gone", field="participant_id")
            if person.account_id != conn.identity.account_id:
                raise Forbidden("that place is another account's", field="participant_id")
            self._present(conference_id, pid)
            self.connections[pid] = conn
            conn.conference_id = conference_id
            admitted = live.session.is_admitted(pid)
            await conn.send(wire.Resumed(conference_id, pid, admitted))
            if admitted:
                await conn.send(lobby.roster_message(pid))
        log.info("participant %s resumed in %s", pid, conference_id)
        if admitted and relay is not None and isinstance(self.media_keys, RefreshableMedia):
            await self.media_keys.refresh(conference_id, relay)  # it missed a move while away

    async def _drop(self, conn: Connection) -> None:
        """The socket of a resumable participant closed: keep its place for `RESUME_GRACE`."""
        conference_id = conn.conference_id
        await self._detach(conn)
        if conference_id is None:
            return
        if conn.remote:
            with contextlib.suppress(DomainError):
                await self._forward(conn, DROPPED, None)
            return
        live = self.live.get(conference_id)
        if live is not None and conn.participant_id not in self.connections:
            self._start_grace(live, conn.participant_id)

    def _start_grace(self, live: LiveConference, participant_id: str) -> None:
        live.absent.add(participant_id)
        old = live.grace.pop(participant_id, None)
        if old is not None:
            old.cancel()
        live.grace[participant_id] = asyncio.create_task(self._expire(live, participant_id))

    def _present(self, conference_id: str, participant_id: str) -> None:
        live = self.live.get(conference_id)
        if live is None:
            return
        live.absent.discard(participant_id)
        task = live.grace.pop(participant_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _expire(self, live: LiveConference, participant_id: str) -> None:
        await asyncio.sleep(RESUME_GRACE)
        async with live.lock:
            if live.grace.get(participant_id) is not asyncio.current_task():
                return
            del live.grace[participant_id]
            if participant_id not in live.absent or live.session.ended:
                return
            live.absent.discard(participant_id)
            conn = self.connections.get(participant_id)
            if isinstance(conn, RemoteParticipant):
                del self.connections[participant_id]
            log.info("participant %s did not resume; it leaves", participant_id)
            with contextlib.suppress(Moved):
                await self._apply(live, Leave(participant_id))

    # -- the replicated region: owners, forwarding and take-over ----------------------------

    def _replication(self) -> Replication:
        assert self.replication is not None
        return self.replication

    async def _owns(self, conference_id: str) -> bool:
        """Whether this replica runs the conference (claiming it if nobody does, taking it over
        if its owner's lease ran out)."""
        if conference_id in self.live:
            return True
        rep = self._replication()
        owner = await rep.store.claim(conference_id, rep.replica_id)
        if owner.replica_id == rep.replica_id:
            return True  # claimed now; the join opens its session
        if not owner.lease_valid:
            return await self._take_over(conference_id)
        return False

    async def _take_over(self, conference_id: str) -> bool:
        rep = self._replication()
        asked = asyncio.get_running_loop().time()
        taken = await rep.store.take_over(conference_id, rep.replica_id)
        if taken is None:
            owner = await rep.store.owner(conference_id)
            return owner is not None and owner.replica_id == rep.replica_id
        snapshot, resume = taken
        if not snapshot:
            return True  # its owner died before writing a session: the next join opens one
        session = ConferenceSession.restore(snapshot)
        live = LiveConference(session, saved="", resume=resume)
        live.lease_until = asked + LEASE_SECONDS - LEASE_MARGIN
        self.live[conference_id] = live
        for person in [*session.lobby.participants, *session.lobby.waiting]:
            conn = self.connections.get(person)
            if isinstance(conn, Connection):
                conn.remote = False
            elif conn is None:
                kind = session.kinds.get(person, LegKind.CLIENT)
                remote = RemoteParticipant(rep.bus, person, None, kind, conference_id)
                self.connections[person] = remote
                self._start_grace(live, person)  # until it speaks or resumes
        await self._serve_conference(live)
        log.warning("replica %s took over conference %s", rep.replica_id, conference_id)
        return True

    async def _hold_lease(self, live: LiveConference) -> None:
        """Fencing: act on a conference only under a lease known to hold. A replica starved of
        CPU past its lease renews it first; if another replica took the conference over
        meanwhile, this one steps down and raises `Moved`."""
        if self.replication is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < live.lease_until:
            return
        rep = self.replication
        asked = loop.time()
        if live.conference_id in await rep.store.renew(rep.replica_id, [live.conference_id]):
            live.lease_until = asked + LEASE_SECONDS - LEASE_MARGIN
            return
        await self._step_down(live)
        raise Moved(live.conference_id)

    async def _step_down(self, live: LiveConference) -> None:
        """Another replica owns the conference now: drop the session here (no more actions, no
        grace timers), and hand the sockets held here to the new owner as present."""
        conference_id = live.conference_id
        if self.live.get(conference_id) is not live:
            return
        log.warning("conference %s is owned elsewhere now", conference_id)
        del self.live[conference_id]
        for task in live.grace.values():
            if task is not asyncio.current_task():
                task.cancel()
        live.grace.clear()
        if live.subscription is not None:
            # not from here: this may run in that subscription's own handler
            asyncio.get_running_loop().call_later(
                UNSUBSCRIBE_DELAY, _unsubscribe_soon, live.subscription
            )
            live.subscription = None
        for conn in list(self.connections.values()):
            if conn.conference_id != conference_id:
                continue
            if isinstance(conn, Connection):
                conn.remote = True  # its messages go to the new owner
                _in_background(self._hand_over(conn))
            else:
                del self.connections[conn.participant_id]

    async def _hand_over(self, conn: Connection) -> None:
        """Tell the conference's new owner that this socket's participant is here (the owner
        took over from the snapshot and would otherwise wait for it to resume)."""
        with contextlib.suppress(DomainError):
            await self._attach(conn)
            if conn.remote and conn.conference_id is not None:
                await self._forward(conn, PRESENT, None)

    async def _serve_conference(self, live: LiveConference) -> None:
        if self.replication is None or live.subscription is not None:
            return
        bus = self.replication.bus
        conference_id = live.conference_id

        async def handle(body: dict[str, Any]) -> dict[str, Any] | None:
            if self.live.get(conference_id) is not live:
                return None  # an ended session's subject, about to be let go
            return await self._on_request(conference_id, body)

        live.subscription = await bus.subscribe(bus.conference_subject(conference_id), handle)

    async def _release(self, live: LiveConference) -> None:
        if self.replication is None:
            return
        if live.subscription is not None:
            # not from here: this may run in that subscription's own handler, which unsubscribing
            # would cancel before it answers
            asyncio.get_running_loop().call_later(
                UNSUBSCRIBE_DELAY, _unsubscribe_soon, live.subscription
            )
            live.subscription = None
        rep = self.replication
        self.region_live.pop(live.conference_id, None)
        await rep.store.release(live.conference_id, rep.replica_id)
        for pid, conn in list(self.connections.items()):
            if isinstance(conn, RemoteParticipant) and conn.conference_id in (
                None,
                live.conference_id,
            ):
                del self.connections[pid]

    async def _save(self, live: LiveConference) -> None:
        if self.replication is None or live.session.ended:
            return
        snapshot = live.session.snapshot()
        text = json.dumps([snapshot, live.resume], sort_keys=True)
        if text == live.saved:
            return
        rep = self.replication
        if not await rep.store.save(live.conference_id, rep.replica_id, snapshot, live.resume):
            await self._step_down(live)
            return
        live.saved = text

    async def _attach(self, conn: Connection) -> None:
        """Hear, on the bus, what the conference's owner (or the relay supervisor) sends it."""
        if self.replication is None or conn.subscription is not None:
            return
        bus = self.replication.bus

        async def handle(body: dict[str, Any]) -> None:
            message = body.get("send")
            if isinstance(message, dict):
                await conn.send(message)
            close = body.get("close")
            if isinstance(close, dict):
                conn.conference_id = None
                conn.remote = False
                await conn.close(int(close["code"]), str(close["reason"]))
            return None

        conn.subscription = await bus.subscribe(
            bus.participant_subject(conn.participant_id), handle
        )

    async def _detach(self, conn: Connection) -> None:
        if conn.subscription is not None:
            with contextlib.suppress(Exception):
                await conn.subscription.unsubscribe()
            conn.subscription = None

    async def _forward(
        self,
        conn: Connection,
        kind: str,
        message: dict[str, Any] | None,
        conference: JoinableConference | None = None,
    ) -> None:
        """Hand a participant's join, message or leave to the owner of its conference; when the
        owner is gone, take the conference over and handle it here."""
        conference_id = conn.conference_id
        assert conference_id is not None
        body: dict[str, Any] = {
            "kind": kind,
            "participant_id": conn.participant_id,
            "identity": identity_body(conn.identity),
            "leg": conn.sign_in.leg.value,
            "message": message,
            "conference": None if conference is None else conference_body(conference),
        }
        answer = await self._ask_owner(conference_id, body)
        if answer.get("refused"):
            raise Forbidden(str(answer["refused"]), field=answer.get("field"))
        if answer.get("owned"):
            return
        if conference_id not in self.live:
            raise Forbidden("the conference is not live any more", field="conference_id")
        conn.remote = False  # this replica runs it now
        await self._handle_here(conference_id, conn, body)

    async def _ask_owner(self, conference_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send the owner a request; {} when this replica owns the conference now (taken over),
        or when nobody owns it."""
        if self.replication is None:
            return {}
        rep = self.replication
        subject = rep.bus.conference_subject(conference_id)
        deadline = asyncio.get_running_loop().time() + 10.0
        while True:
            if conference_id in self.live:
                return {}
            try:
                answer = await rep.bus.request(subject, body)
                if answer.get("owned"):
                    return answer
            except Unreachable:
                pass
            owner = await rep.store.owner(conference_id)
            if owner is None:
                return {}
            if not owner.lease_valid and await self._take_over(conference_id):
                return {}
            if asyncio.get_running_loop().time() > deadline:
                return {}
            await asyncio.sleep(0.1)

    async def _on_request(self, conference_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A request to the owner of a conference, from the replica holding a participant."""
        live = self.live.get(conference_id)
        if live is None:
            return {"owned": False}
        kind = body.get("kind")
        if kind == "terminate":
            return {"owned": True, "ended": await self.end_conference(conference_id)}
        if kind == "reconfigure":
            await self.reconfigure(conference_id, body.get("locked"), body.get("escalation"))
            return {"owned": True}
        pid = str(body.get("participant_id"))
        conn = self.connections.get(pid)
        if not isinstance(conn, RemoteParticipant):
            conn = RemoteParticipant(self._replication().bus, pid, None)
            if kind != DROPPED:
                self.connections[pid] = conn
        try:
            await self._handle_here(conference_id, conn, body)
        except Moved:
            return None  # the new owner, subscribed too, answers it
        except DomainError as exc:
            return {"owned": True, "refused": exc.reason, "field": exc.field}
        return {"owned": True}

    async def _handle_here(
        self, conference_id: str, conn: Connection | RemoteParticipant, body: dict[str, Any]
    ) -> None:
        kind = body.get("kind")
        identity = identity_from(body["identity"])
        conn.identity = identity
        leg = LegKind(body.get("leg") or LegKind.CLIENT.value)
        try:
            if kind == ENTER:
                conn.conference_id = conference_id
                resume = (body.get("message") or {}).get("resume")
                await self._join_session(
                    conn, conference_from(body["conference"]), identity, leg, resume
                )
            elif kind == MESSAGE:
                conn.conference_id = conference_id
                self._present(conference_id, conn.participant_id)
                await self._in_conference(conn, body["message"])
            elif kind == REJOIN:
                asked = body["message"]
                await self._rejoin_here(
                    conference_id, conn, str(asked["digest"]), asked.get("relay") or None
                )
            elif kind == PRESENT:
                conn.conference_id = conference_id
                self._present(conference_id, conn.participant_id)
            elif kind == DROPPED:
                live = self.live.get(conference_id)
                if live is not None and self.connections.get(conn.participant_id) is conn:
                    del self.connections[conn.participant_id]
                    self._start_grace(live, conn.participant_id)
            elif kind == EXIT:
                conn.conference_id = conference_id
                await self._leave(conn)
                if self.connections.get(conn.participant_id) is conn and isinstance(
                    conn, RemoteParticipant
                ):
                    del self.connections[conn.participant_id]
        except DomainError as exc:
            if kind == REJOIN:
                raise
            await conn.send(_error(exc))

    async def run_replication(self) -> None:
        """Renew the leases of the conferences this replica runs; take over those of its
        participants whose owner's lease ran out."""
        rep = self._replication()
        while True:
            try:
                owned = {c: live for c, live in self.live.items() if not live.session.ended}
                asked = asyncio.get_running_loop().time()
                kept = set(await rep.store.renew(rep.replica_id, list(owned)))
                for conference_id, live in owned.items():
                    if conference_id in kept:
                        live.lease_until = asked + LEASE_SECONDS - LEASE_MARGIN
                    else:
                        await self._step_down(live)
                elsewhere = sorted(
                    {
                        c.conference_id
                        for c in self.connections.values()
                        if isinstance(c, Connection) and c.remote and c.conference_id is not None
                    }
                )
                for conference_id in await rep.store.expired(elsewhere):
                    await self._take_over(conference_id)
                self.region_live = await rep.store.live_conferences()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replication loop failed; trying again")
            await asyncio.sleep(RENEW_SECONDS)


def _unsubscribe_soon(subscription: Any) -> None:
    async def unsubscribe() -> None:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    _in_background(unsubscribe())


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _error(exc: DomainError) -> wire.Error:
    return wire.Error(exc.code, exc.field, exc.reason)


def _string(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise Invalid(f"{name} is required", field=name)
    return value
