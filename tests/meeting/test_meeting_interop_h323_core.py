"""The interop gateway's H.323 core (MT-07): H.225.0 with H.235 in and actions out, with no socket,
clock or meeting service; its call states and the events each state refuses."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode
from services.meeting.interop import h323
from services.meeting.interop.client import H323Caller
from services.meeting.interop.common import (
    Action,
    Admitted,
    CallProtocol,
    CloseConnection,
    Connected,
    ConnectionLost,
    DataReceived,
    Ended,
    Event,
    JoinConference,
    LeaveConference,
    Lobby,
    MediaOpened,
    OpenMedia,
    Refusal,
    Refused,
    Send,
    StartMedia,
    refusal_of,
)
from services.meeting.interop.h323_core import H323Call, H323Core, H323State

CONFERENCE = "sa-0123456789abcdef"
H323_CONN = 2


@pytest.fixture
def gateway() -> H323Core:
    gw = H323Core(secrets.token_bytes)
    gw.handle(Connected(H323_CONN, ("127.0.0.1", 50002), "TLSv1.3"))
    return gw


def new_caller() -> H323Caller:
    return H323Caller("127.0.0.1", 1300, Path("unused"))


def h323_out(actions: list[Action]) -> list[h323.H225]:
    stream = h323.TpktStream()
    out = []
    for action in actions:
        if isinstance(action, Send):
            out += [h323.H225.decode(p) for p in stream.feed(action.data) if isinstance(p, bytes)]
    return out


def of(kind: type[Any], actions: list[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def test_an_h323_setup_without_h235_is_released_with_security_denied(gateway: H323Core) -> None:
    plain = new_caller()
    setup = plain.setup(CONFERENCE, tokens=[], channels=[h323.plain_audio("127.0.0.1", 4000)])
    actions = gateway.handle(DataReceived(H323_CONN, setup.encode()))
    [release] = h323_out(actions)
    assert release.name == "releaseComplete" and release.body["reason"] == "securityDenied"
    assert CloseConnection(H323_CONN) in actions
    assert not of(JoinConference, actions) and not of(OpenMedia, actions)


def test_an_h323_setup_with_h235_is_connected_with_keys_only_the_caller_can_open(
    gateway: H323Core,
) -> None:
    caller = new_caller()
    actions = gateway.handle(DataReceived(H323_CONN, caller.setup(CONFERENCE).encode()))
    assert [m.name for m in h323_out(actions)] == ["callProceeding"]
    call_id = of(OpenMedia, actions)[0].call_id
    [join] = of(JoinConference, gateway.handle(MediaOpened(call_id, "127.0.0.1", 41002)))
    assert (join.protocol, join.conference_id, join.password) == (
        CallProtocol.H323,
        CONFERENCE,
        None,
    )
    assert [m.name for m in h323_out(gateway.handle(Lobby(call_id)))] == ["alerting"]
    connected = gateway.handle(Admitted(call_id))
    [connect] = h323_out(connected)
    assert connect.name == "connect"
    keys = caller.media_keys(connect)
    [start] = of(StartMedia, connected)
    assert keys == {"gatewayToCaller": start.to_caller, "callerToGateway": start.from_caller}
    assert start.caller == ("127.0.0.1", 40002)
    eavesdropper = new_caller()
    eavesdropper.call_identifier = caller.call_identifier
    with pytest.raises(h323.H323Error):
        eavesdropper.media_keys(connect)  # without the caller's DH secret the keys stay shut


@pytest.mark.parametrize(
    ("refusal", "reason", "cause"),
    [
        (refusal_of(ErrorCode.FORBIDDEN), "noPermission", h323.CAUSE_REJECTED),
        (refusal_of(ErrorCode.NOT_FOUND), "unreachableDestination", h323.CAUSE_NO_ROUTE),
        (Refusal.REJECTED, "destinationRejection", h323.CAUSE_REJECTED),
        (Refusal.UNAVAILABLE, "gatewayResources", h323.CAUSE_INCOMPATIBLE),
    ],
)
def test_the_meetings_refusals_map_to_release_reasons(
    gateway: H323Core, refusal: Refusal, reason: str, cause: int
) -> None:
    caller = new_caller()
    actions = gateway.handle(DataReceived(H323_CONN, caller.setup(CONFERENCE).encode()))
    call_id = of(OpenMedia, actions)[0].call_id
    gateway.handle(MediaOpened(call_id, "127.0.0.1", 41002))
    refused = gateway.handle(Refused(call_id, refusal, "why"))
    [release] = h323_out(refused)
    assert (release.body["reason"], release.cause) == (reason, cause)
    assert CloseConnection(H323_CONN) in refused


def test_release_complete_from_the_caller_hangs_up(gateway: H323Core) -> None:
    caller = new_caller()
    setup = caller.setup(CONFERENCE)
    call_id = of(OpenMedia, gateway.handle(DataReceived(H323_CONN, setup.encode())))[0]
    release = h323.release_complete(setup, "undefinedReason")
    actions = gateway.handle(DataReceived(H323_CONN, release.encode()))
    assert of(LeaveConference, actions) == [LeaveConference(call_id.call_id)]


def test_unreadable_h225_is_released_and_non_tpkt_closes(gateway: H323Core) -> None:
    per = h323.tpkt(b"\x08\x02\x00\x09\x05\x7e\x00\x03\x05\x01\x02")
    actions = gateway.handle(DataReceived(H323_CONN, per))
    [release] = h323_out(actions)
    assert release.call_reference == 9 and release.cause == h323.CAUSE_INVALID_CONTENTS
    garbage = gateway.handle(DataReceived(H323_CONN, b"INVITE sips:x SIP/2.0\r\n"))
    assert CloseConnection(H323_CONN) in garbage


def test_the_conference_ending_releases_the_call(gateway: H323Core) -> None:
    call = call_in(gateway, new_caller(), H323State.CONNECTED)
    actions = gateway.handle(Ended(call.call_id, "the conference ended"))
    [release] = h323_out(actions)
    assert (release.body["reason"], release.cause) == ("undefinedReason", h323.CAUSE_NORMAL)
    assert of(LeaveConference, actions) == [LeaveConference(call.call_id)]
    assert CloseConnection(H323_CONN) in actions


def test_losing_the_connection_hangs_up_its_call(gateway: H323Core) -> None:
    call = call_in(gateway, new_caller(), H323State.CONNECTED)
    assert of(LeaveConference, gateway.handle(ConnectionLost(H323_CONN))) == [
        LeaveConference(call.call_id)
    ]
    assert gateway.calls == {} and call.state is H323State.ENDED


# -- the call's states -----------------------------------------------------------------------------


def call_in(gw: H323Core, caller: H323Caller, state: H323State) -> H323Call:
    """A call brought to `state` by the legal events, each checked on the way."""
    setup = DataReceived(H323_CONN, caller.setup(CONFERENCE).encode())
    call_id = of(OpenMedia, gw.handle(setup))[0].call_id
    call = gw.calls[call_id]
    steps: list[tuple[Event, H323State]] = [
        (MediaOpened(call_id, "127.0.0.1", 41002), H323State.JOINING),
        (Lobby(call_id), H323State.ALERTING),
        (Admitted(call_id), H323State.CONNECTED),
        (Ended(call_id, "the conference ended"), H323State.ENDED),
    ]
    assert call.state is H323State.OPENING_MEDIA
    for event, reached in steps:
        if call.state is state:
            break
        assert gw.handle(event), f"{event} from {call.state} is a transition"
        assert call.state is reached
    assert call.state is state
    return call


def second_setup(caller: H323Caller, _: H323Call) -> Event:
    return DataReceived(H323_CONN, caller.setup(CONFERENCE).encode())


def release(_: H323Caller, call: H323Call) -> Event:
    message = h323.release_complete(call.setup, "undefinedReason")
    return DataReceived(H323_CONN, message.encode())


def media(_: H323Caller, call: H323Call) -> Event:
    return MediaOpened(call.call_id, "127.0.0.1", 41999)


def lobby(_: H323Caller, call: H323Call) -> Event:
    return Lobby(call.call_id)


def admitted(_: H323Caller, call: H323Call) -> Event:
    return Admitted(call.call_id)


def refused(_: H323Caller, call: H323Call) -> Event:
    return Refused(call.call_id, Refusal.FORBIDDEN, "why")


def ended(_: H323Caller, call: H323Call) -> Event:
    return Ended(call.call_id, "the conference ended")


MakeEvent = Callable[[H323Caller, H323Call], Event]

# Every event that is not a transition of the state, and the only H.225.0 answer it gets.
ILLEGAL: list[tuple[H323State, MakeEvent, list[str]]] = [
    (H323State.OPENING_MEDIA, lobby, []),
    (H323State.OPENING_MEDIA, admitted, []),
    (H323State.OPENING_MEDIA, second_setup, ["releaseComplete"]),
    (H323State.JOINING, media, []),
    (H323State.JOINING, second_setup, ["releaseComplete"]),
    (H323State.ALERTING, media, []),
    (H323State.ALERTING, lobby, []),
    (H323State.ALERTING, second_setup, ["releaseComplete"]),
    (H323State.CONNECTED, media, []),
    (H323State.CONNECTED, lobby, []),
    (H323State.CONNECTED, admitted, []),
    (H323State.CONNECTED, second_setup, ["releaseComplete"]),
    (H323State.ENDED, lobby, []),
    (H323State.ENDED, admitted, []),
    (H323State.ENDED, refused, []),
    (H323State.ENDED, ended, []),
]


@pytest.mark.parametrize(
    ("state", "make", "answer"),
    ILLEGAL,
    ids=[f"{state.name}-{make.__name__}" for state, make, _ in ILLEGAL],
)
def test_an_event_that_is_no_transition_of_the_state_changes_nothing(
    gateway: H323Core, state: H323State, make: MakeEvent, answer: list[str]
) -> None:
    caller = new_caller()
    call = call_in(gateway, caller, state)
    before = (call.media, call.keys, dict(gateway.calls))
    actions = gateway.handle(make(caller, call))
    assert [m.name for m in h323_out(actions)] == answer
    assert not [a for a in actions if not isinstance(a, Send | CloseConnection) and a.call_id]
    assert CloseConnection(H323_CONN) not in actions
    assert call.state is state
    assert (call.media, call.keys, dict(gateway.calls)) == before


def test_media_for_a_call_that_is_gone_is_given_back(gateway: H323Core) -> None:
    call = call_in(gateway, new_caller(), H323State.ENDED)
    assert gateway.handle(media(new_caller(), call)) == [LeaveConference(call.call_id)]


@pytest.mark.parametrize(
    ("state", "make", "reached"),
    [
        (H323State.OPENING_MEDIA, release, H323State.ENDED),
        (H323State.JOINING, admitted, H323State.CONNECTED),
        (H323State.JOINING, refused, H323State.ENDED),
        (H323State.ALERTING, release, H323State.ENDED),
        (H323State.ALERTING, refused, H323State.ENDED),
        (H323State.CONNECTED, release, H323State.ENDED),
        (H323State.CONNECTED, refused, H323State.ENDED),
    ],
)
def test_the_same_events_are_transitions_where_the_state_allows_them(
    gateway: H323Core, state: H323State, make: MakeEvent, reached: H323State
) -> None:
    """The control for the test above: these events do act from these states."""
    caller = new_caller()
    call = call_in(gateway, caller, state)
    actions = gateway.handle(make(caller, call))
    assert call.state is reached
    assert [a for a in actions if not isinstance(a, Send | CloseConnection) and a.call_id]


def test_a_refusal_once_connected_releases_as_a_hang_up(gateway: H323Core) -> None:
    call = call_in(gateway, new_caller(), H323State.CONNECTED)
    [message] = h323_out(gateway.handle(refused(new_caller(), call)))
    assert (message.body["reason"], message.cause) == ("undefinedReason", h323.CAUSE_NORMAL)


# -- robustness ------------------------------------------------------------------------------------

_SETUP = new_caller().setup(CONFERENCE, tokens=[]).encode()


@settings(max_examples=150, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
    cut=st.integers(1, 600),
)
def test_no_mangled_input_makes_the_core_raise(edits: list[tuple[int, int]], cut: int) -> None:
    """Bytes flipped anywhere, delivered in pieces: the core answers, drops or closes, never
    raises, and whatever it sends is a well-formed H.225.0 message."""
    gw = H323Core(secrets.token_bytes)
    gw.handle(Connected(H323_CONN, ("127.0.0.1", 50000), "TLSv1.3"))
    data = bytearray(_SETUP)
    for index, value in edits:
        data[index % len(data)] = value
    actions: list[Action] = []
    for start in range(0, len(data), cut):
        actions += gw.handle(DataReceived(H323_CONN, bytes(data[start : start + cut])))
    sent = b"".join(a.data for a in actions if isinstance(a, Send))
    for payload in h323.TpktStream().feed(sent):
        assert isinstance(payload, bytes)
        h323.H225.decode(payload)
