"""What the interop gateway's SIP core and H.323 core share (MT-07), sans-IO.

Both cores take the same connection events and the same answers from the conference side, and ask
the driver (`server.py`) for the same actions: send bytes, close a connection, open a media port,
join or leave the conference through the region's signaling, start the SRTP bridge, and log a
decision. The meeting's refusals reach the cores as a `Refusal`, mapped once here from the
`ErrorCode` of a signaling answer; each core turns it into its own protocol's answer (a SIP status,
an H.225.0 release reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from typing import Protocol, assert_never

from media_core.srtp import KeyMaterial
from protocol.errors import ErrorCode

Address = tuple[str, int]
RandomBytes = Callable[[int], bytes]


class CallProtocol(StrEnum):
    """A third-party leg's protocol, as the meeting's signaling and its call records name it."""

    SIP = "sips"
    H323 = "h323"


def token(random_bytes: RandomBytes, size: int = 6) -> str:
    return random_bytes(size).hex()


# -- events: the connection side -------------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """A TLS connection completed its handshake on the core's listener."""

    conn: int
    peer: Address
    tls_version: str


@dataclass(frozen=True)
class DataReceived:
    conn: int
    data: bytes


@dataclass(frozen=True)
class ConnectionLost:
    conn: int


@dataclass(frozen=True)
class MediaOpened:
    """The call's media port towards the caller is open."""

    call_id: str
    host: str
    port: int


# -- events: what the meeting's signaling answered about a call ------------------------------------


class Refusal(Enum):
    """Why the meeting would not take a call, whatever protocol the caller speaks."""

    FORBIDDEN = auto()  # a wrong conference password, or no Teams access for the enterprise
    NOT_FOUND = auto()  # no such conference in this region
    REJECTED = auto()  # a moderator rejected the caller from the lobby
    UNAVAILABLE = auto()  # anything else: the meeting service would not take it


def refusal_of(code: ErrorCode) -> Refusal:
    """The meaning of the `error` code of a signaling answer to the gateway's sign-in or join."""
    match code:
        case ErrorCode.FORBIDDEN:
            return Refusal.FORBIDDEN
        case ErrorCode.NOT_FOUND | ErrorCode.CONFLICT | ErrorCode.INVALID:
            return Refusal.NOT_FOUND
        case ErrorCode.REJECTED:
            return Refusal.REJECTED
        case ErrorCode.UNAVAILABLE | ErrorCode.UNAUTHENTICATED | ErrorCode.FIRMWARE_REJECTED:
            return Refusal.UNAVAILABLE
        case _:
            assert_never(code)


@dataclass(frozen=True)
class Lobby:
    """The caller waits in the conference's lobby."""

    call_id: str


@dataclass(frozen=True)
class Admitted:
    """The caller is in the conference."""

    call_id: str


@dataclass(frozen=True)
class Refused:
    """The meeting would not take the call (before admission), with its reason text."""

    call_id: str
    refusal: Refusal
    reason: str


@dataclass(frozen=True)
class Ended:
    """The conference side is gone: the conference ended, the caller was removed, or signaling
    closed."""

    call_id: str
    reason: str


ConferenceAnswer = Lobby | Admitted | Refused | Ended
Event = Connected | DataReceived | ConnectionLost | MediaOpened | ConferenceAnswer

# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    conn: int
    data: bytes


@dataclass(frozen=True)
class CloseConnection:
    conn: int


@dataclass(frozen=True)
class OpenMedia:
    call_id: str


@dataclass(frozen=True)
class JoinConference:
    call_id: str
    protocol: CallProtocol
    conference_id: str
    password: str | None
    caller: str
    display_name: str


@dataclass(frozen=True)
class LeaveConference:
    """Hang up the call's conference side: signaling, media ports and bridge."""

    call_id: str


@dataclass(frozen=True)
class StartMedia:
    """Start (or re-key) the call's SRTP bridge with the keys this leg agreed."""

    call_id: str
    from_caller: KeyMaterial
    to_caller: KeyMaterial
    caller: Address


class Outcome(StrEnum):
    """What became of a request or a call; the log shows the lower-case name."""

    DROPPED = auto()  # not answered (unreadable, or nothing to answer)
    REFUSED = auto()
    OFFER_ACCEPTED = auto()  # SIP: a TLS INVITE with an SRTP offer, joining
    SETUP_ACCEPTED = auto()  # H.323: a Setup with H.235, joining
    LOBBY = auto()
    ADMITTED = auto()
    REKEYED = auto()
    ENDED = auto()


@dataclass(frozen=True)
class Decision:
    """What the gateway decided, for its log: never a key, never media."""

    protocol: CallProtocol
    call_id: str | None
    outcome: Outcome
    code: str  # the SIP status or H.225.0 message or reason that carried it, "-" for none
    reason: str


Action = (
    Send | CloseConnection | OpenMedia | JoinConference | LeaveConference | StartMedia | Decision
)


class GatewayCore(Protocol):
    """A sans-IO core of one listener: the SIP core or the H.323 core."""

    def handle(self, event: Event) -> list[Action]: ...
