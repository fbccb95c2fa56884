"""The interop gateway's H.323 core (MT-07), sans-IO: H.225.0 call signaling in, actions out.

Third-party H.323 systems reach the gateway only with H.235 (H.225.0 in TPKT over TLS; see
`h323.py`). The driver (`server.py`) feeds this core what arrives on the H.323 listener; the core
never touches a socket, a clock or the meeting service. A Setup is judged by `h323.judge_setup`;
without H.235 it gets ReleaseComplete with reason securityDenied. An admitted Setup gets
CallProceeding, Alerting while in the lobby, and Connect with the gateway's Diffie-Hellman half key
and the wrapped media keys once admitted; a refusal by the meeting's rules gets ReleaseComplete with
noPermission, unreachableDestination, destinationRejection or gatewayResources.

One connection carries one call. A call moves through `H323State`: OPENING_MEDIA (CallProceeding
sent) -> JOINING (its media port is open) -> ALERTING (in the lobby) -> CONNECTED, and ENDED from
any of them. An event that is not a transition of the call's state changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any, assert_never

from media_core.srtp import KeyMaterial
from services.meeting.interop import h323
from services.meeting.interop.common import (
    Action,
    Address,
    Admitted,
    CallProtocol,
    CloseConnection,
    ConferenceAnswer,
    Connected,
    ConnectionLost,
    DataReceived,
    Decision,
    Ended,
    Event,
    JoinConference,
    LeaveConference,
    Lobby,
    MediaOpened,
    OpenMedia,
    Outcome,
    RandomBytes,
    Refusal,
    Refused,
    Send,
    StartMedia,
    token,
)

H323 = CallProtocol.H323


def release_reason(refusal: Refusal) -> tuple[str, int]:
    """The ReleaseComplete reason and Q.931 cause for a pending call that the meeting refused."""
    match refusal:
        case Refusal.FORBIDDEN:
            return "noPermission", h323.CAUSE_REJECTED
        case Refusal.NOT_FOUND:
            return "unreachableDestination", h323.CAUSE_NO_ROUTE
        case Refusal.REJECTED:
            return "destinationRejection", h323.CAUSE_REJECTED
        case Refusal.UNAVAILABLE:
            return "gatewayResources", h323.CAUSE_INCOMPATIBLE
        case _:
            assert_never(refusal)


class H323State(Enum):
    OPENING_MEDIA = auto()  # CallProceeding sent; the driver opens the media port
    JOINING = auto()  # the driver joins the conference through the region's signaling
    ALERTING = auto()  # Alerting sent: the caller waits in the lobby
    CONNECTED = auto()  # Connect sent with the wrapped media keys: in the conference
    ENDED = auto()


PENDING = frozenset({H323State.OPENING_MEDIA, H323State.JOINING, H323State.ALERTING})


@dataclass(frozen=True)
class H323Keys:
    """The gateway's Diffie-Hellman secret and the media keys it hands the caller in Connect."""

    private: int
    to_caller: KeyMaterial
    from_caller: KeyMaterial


@dataclass
class H323Call:
    call_id: str
    conn: int
    setup: h323.H225
    admit: h323.Admit
    state: H323State = H323State.OPENING_MEDIA
    media: Address | None = None  # set with keys on leaving OPENING_MEDIA
    keys: H323Keys | None = None


@dataclass
class H323Connection:
    conn: int
    peer: Address
    stream: h323.TpktStream = field(default_factory=h323.TpktStream)
    call: H323Call | None = None


class H323Core:
    def __init__(self, random_bytes: RandomBytes) -> None:
        self.random = random_bytes
        self.connections: dict[int, H323Connection] = {}
        self.calls: dict[str, H323Call] = {}

    def handle(self, event: Event) -> list[Action]:
        match event:
            case Connected():
                self.connections[event.conn] = H323Connection(event.conn, event.peer)
                return []
            case DataReceived():
                conn = self.connections.get(event.conn)
                return [] if conn is None else self._data(conn, event.data)
            case ConnectionLost():
                return self._lost(event.conn)
            case MediaOpened():
                return self._media_opened(event)
            case Lobby() | Admitted() | Refused() | Ended():
                return self._answer(event)
            case _:
                assert_never(event)

    def _lost(self, conn_id: int) -> list[Action]:
        conn = self.connections.pop(conn_id, None)
        if conn is None or conn.call is None:
            return []
        call = conn.call
        self._end(call)
        return [
            LeaveConference(call.call_id),
            Decision(H323, call.call_id, Outcome.ENDED, "-", "connection lost"),
        ]

    def _end(self, call: H323Call) -> None:
        call.state = H323State.ENDED
        self.calls.pop(call.call_id, None)
        conn = self.connections.get(call.conn)
        if conn is not None and conn.call is call:
            conn.call = None

    # -- messages from the caller --------------------------------------------------------------

    def _data(self, conn: H323Connection, data: bytes) -> list[Action]:
        actions: list[Action] = []
        for item in conn.stream.feed(data):
            if isinstance(item, h323.H323Error):
                actions += [
                    Decision(H323, None, Outcome.DROPPED, "-", item.reason),
                    CloseConnection(conn.conn),
                ]
                continue
            try:
                message = h323.H225.decode(item)
            except h323.H323Error as exc:
                actions += self._unreadable(conn, item, exc)
                continue
            actions += self._message(conn, message)
        return actions

    def _unreadable(
        self, conn: H323Connection, payload: bytes, exc: h323.H323Error
    ) -> list[Action]:
        actions: list[Action] = [
            Decision(H323, None, Outcome.REFUSED, "undefinedReason", exc.reason)
        ]
        try:
            q931 = h323.Q931.decode(payload)
        except h323.H323Error:
            return [*actions, CloseConnection(conn.conn)]
        stand_in = h323.H225("setup", q931.call_reference, q931.from_destination, {})
        release = h323.release_complete(stand_in, "undefinedReason", h323.CAUSE_INVALID_CONTENTS)
        return [*actions, Send(conn.conn, release.encode()), CloseConnection(conn.conn)]

    def _message(self, conn: H323Connection, message: h323.H225) -> list[Action]:
        call = conn.call
        if message.name == "releaseComplete":
            if call is None:
                return [CloseConnection(conn.conn)]
            self._end(call)
            return [
                LeaveConference(call.call_id),
                Decision(
                    H323, call.call_id, Outcome.ENDED, "releaseComplete", "the caller hung up"
                ),
                CloseConnection(conn.conn),
            ]
        if message.name != "setup":
            return []  # nothing else from the caller changes the call here
        if call is not None:  # one call per connection
            release = h323.release_complete(message, "undefinedReason")
            return [Send(conn.conn, release.encode())]
        judged = h323.judge_setup(message)
        if isinstance(judged, h323.Refuse):
            release = h323.release_complete(message, judged.reason, judged.cause)
            return [
                Send(conn.conn, release.encode()),
                Decision(H323, None, Outcome.REFUSED, judged.reason, judged.detail),
                CloseConnection(conn.conn),
            ]
        new = H323Call(f"h323-{token(self.random)}", conn.conn, message, judged)
        self.calls[new.call_id] = new
        conn.call = new
        return [
            Send(conn.conn, h323.reply(message, "callProceeding", {}).encode()),
            Decision(
                H323,
                new.call_id,
                Outcome.SETUP_ACCEPTED,
                "callProceeding",
                "H.235.6 in the Setup",
            ),
            OpenMedia(new.call_id),
        ]

    def _connect(self, call: H323Call) -> h323.H225:
        assert call.media is not None and call.keys is not None  # set since OPENING_MEDIA
        keys = call.keys
        guid = call.setup.call_identifier
        assert guid is not None  # judge_setup admits no Setup without one
        kek = h323.key_encryption_key(keys.private, call.admit.dh.halfkey, guid)
        host, port = call.media

        def channel(direction: str, key: KeyMaterial) -> dict[str, Any]:
            found = h323.encrypted_audio(host, port, call.admit.profile.value)
            return found | {
                "direction": direction,
                "encryptionSync": {"h235Key": {"secureSharedSecret": h323.wrap_key(kek, key)}},
            }

        body = {
            "tokens": [
                {"tokenOID": h323.OID_H235_V3},
                h323.dh_token(h323.dh_public(keys.private)),
            ],
            "fastStart": [
                channel("gatewayToCaller", keys.to_caller),
                channel("callerToGateway", keys.from_caller),
            ],
        }
        return h323.reply(call.setup, "connect", body)

    # -- the conference side -------------------------------------------------------------------

    def _media_opened(self, event: MediaOpened) -> list[Action]:
        call = self.calls.get(event.call_id)
        if call is None:
            return [LeaveConference(event.call_id)]
        if call.state is not H323State.OPENING_MEDIA:
            return []
        call.media = (event.host, event.port)
        profile = call.admit.profile
        private = h323.dh_private(self.random)
        to_caller = KeyMaterial.generate(profile, self.random)
        from_caller = KeyMaterial.generate(profile, self.random)
        call.keys = H323Keys(private, to_caller, from_caller)
        call.state = H323State.JOINING
        name = call.setup.display or call.admit.caller
        return [
            JoinConference(
                call.call_id,
                H323,
                call.admit.conference_id,
                call.admit.password,
                call.admit.caller,
                name[:100],
            )
        ]

    def _answer(self, answer: ConferenceAnswer) -> list[Action]:
        call = self.calls.get(answer.call_id)
        if call is None:
            return []
        conn = self.connections.get(call.conn)
        if conn is None:
            self._end(call)
            return [LeaveConference(call.call_id)]
        match answer:
            case Lobby():
                return self._lobby(conn, call)
            case Admitted():
                return self._admitted(conn, call)
            case Refused() if call.state in PENDING:
                reason, cause = release_reason(answer.refusal)
                return self._release(conn, call, Outcome.REFUSED, reason, cause, answer.reason)
            case Refused():  # a refusal once in the conference ends the call, as below
                return self._release(
                    conn, call, Outcome.REFUSED, "undefinedReason", h323.CAUSE_NORMAL, answer.reason
                )
            case Ended():
                return self._release(
                    conn, call, Outcome.ENDED, "undefinedReason", h323.CAUSE_NORMAL, answer.reason
                )
            case _:
                assert_never(answer)

    def _lobby(self, conn: H323Connection, call: H323Call) -> list[Action]:
        if call.state is not H323State.JOINING:
            return []
        call.state = H323State.ALERTING
        return [
            Send(conn.conn, h323.reply(call.setup, "alerting", {}).encode()),
            Decision(H323, call.call_id, Outcome.LOBBY, "alerting", "waiting for a moderator"),
        ]

    def _admitted(self, conn: H323Connection, call: H323Call) -> list[Action]:
        if call.state not in (H323State.JOINING, H323State.ALERTING):
            return []
        call.state = H323State.CONNECTED
        assert call.keys is not None  # set on leaving OPENING_MEDIA
        return [
            Send(conn.conn, self._connect(call).encode()),
            StartMedia(call.call_id, call.keys.from_caller, call.keys.to_caller, call.admit.media),
            Decision(
                H323, call.call_id, Outcome.ADMITTED, "connect", "in the conference with H.235"
            ),
        ]

    def _release(
        self,
        conn: H323Connection,
        call: H323Call,
        outcome: Outcome,
        reason: str,
        cause: int,
        why: str,
    ) -> list[Action]:
        self._end(call)
        release = h323.release_complete(call.setup, reason, cause)
        return [
            Send(conn.conn, release.encode()),
            LeaveConference(call.call_id),
            Decision(H323, call.call_id, outcome, reason, why),
            CloseConnection(conn.conn),
        ]
