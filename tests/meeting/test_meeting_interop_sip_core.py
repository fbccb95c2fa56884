"""The interop gateway's SIP core (MT-07): SIP over TLS in and actions out, with no socket, clock or
meeting service; its call states and the events each state refuses."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode
from services.meeting.interop import sdp, sip
from services.meeting.interop.client import SipTlsCaller
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
from services.meeting.interop.sip_core import SipCall, SipCore, SipState

CONFERENCE = "sa-0123456789abcdef"
SIP_CONN = 1


@pytest.fixture
def gateway() -> SipCore:
    gw = SipCore("127.0.0.1", 5061, secrets.token_bytes)
    gw.handle(Connected(SIP_CONN, ("127.0.0.1", 50001), "TLSv1.3"))
    return gw


@pytest.fixture
def caller() -> SipTlsCaller:
    return SipTlsCaller("127.0.0.1", 5061, Path("unused-ca.pem"))


def sent_sip(actions: list[Action]) -> list[sip.SipResponse | sip.SipRequest]:
    stream = sip.SipStream()
    out: list[sip.SipResponse | sip.SipRequest] = []
    for action in actions:
        if isinstance(action, Send):
            out += [
                m
                for m in stream.feed(action.data)
                if not isinstance(m, sip.SipError | sip.KeepAlive)
            ]
    return out


def statuses(actions: list[Action]) -> list[int]:
    return [m.status for m in sent_sip(actions) if isinstance(m, sip.SipResponse)]


def of(kind: type[Any], actions: list[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def feed_sip(gw: SipCore, request: sip.SipRequest) -> list[Action]:
    return gw.handle(DataReceived(SIP_CONN, request.encode()))


def admitted_sip_call(gw: SipCore, caller: SipTlsCaller) -> tuple[str, list[Action]]:
    first = feed_sip(gw, caller.invite(CONFERENCE, password="4321"))
    assert statuses(first) == [100]
    call_id = of(OpenMedia, first)[0].call_id
    joins = gw.handle(MediaOpened(call_id, "127.0.0.1", 41000))
    assert of(JoinConference, joins) == [
        JoinConference(
            call_id,
            CallProtocol.SIP,
            CONFERENCE,
            "4321",
            "sips:room-12@caller.example",
            "Polycom Room",
        )
    ]
    return call_id, gw.handle(Admitted(call_id))


def test_an_srtp_invite_is_answered_with_srtp_once_the_meeting_admits_it(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    call_id, actions = admitted_sip_call(gateway, caller)
    [ok] = sent_sip(actions)
    assert isinstance(ok, sip.SipResponse) and ok.status == 200
    assert ok.header("Content-Type") == "application/sdp"
    assert str(sip.NameAddr.parse(ok.header("Contact") or "").uri).startswith("sips:")
    answer = sdp.Session.parse(ok.body.decode())
    [audio] = answer.media
    assert (audio.port, audio.proto, audio.formats) == (41000, "RTP/SAVP", ["0"])
    [crypto] = audio.values("crypto")
    ours = sdp.parse_crypto(crypto)
    assert isinstance(ours, sdp.Crypto) and ours.key != caller.key
    [start] = of(StartMedia, actions)
    assert start == StartMedia(call_id, caller.key, ours.key, ("127.0.0.1", 40000))


def test_a_plain_rtp_offer_gets_488_and_never_reaches_the_meeting(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE, proto="RTP/AVP", with_key=False))
    [refusal] = sent_sip(actions)
    assert isinstance(refusal, sip.SipResponse) and refusal.status == 488
    assert (refusal.header("Warning") or "").startswith("302 roomtrust-interop")
    assert not of(OpenMedia, actions) and not of(JoinConference, actions)
    assert refusal.to.tag  # a final response carries our tag


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({"scheme": "sip"}, 416),
        ({"uri_params": ";transport=udp"}, 403),
        ({"uri_params": ";transport=tcp"}, 403),
        ({"via_transport": "UDP"}, 403),
        ({"via_transport": "TCP"}, 403),
        ({"contact": "<sip:room-12@127.0.0.1:5060>"}, 403),
        ({"contact": "<sips:room-12@127.0.0.1;transport=udp>"}, 403),
        ({"contact": "<tel:+1555>"}, 403),
        ({"extra": [("Require", "100rel")]}, 420),
    ],
)
def test_anything_but_sip_tls_is_refused(
    gateway: SipCore, caller: SipTlsCaller, options: dict[str, Any], status: int
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE, **options))
    assert statuses(actions) == [status]
    assert not of(JoinConference, actions) and not of(OpenMedia, actions)


@pytest.mark.parametrize(
    ("options", "status"),
    [({"max_forwards": 0}, 483), ({"extra": [("Max-Forwards", "9")]}, 400), ({}, 100)],
)
def test_max_forwards(
    gateway: SipCore, caller: SipTlsCaller, options: dict[str, Any], status: int
) -> None:
    assert statuses(feed_sip(gateway, caller.invite(CONFERENCE, **options))) == [status]


def test_the_control_case_with_tls_everywhere_is_accepted(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    invite = caller.invite(CONFERENCE, uri_params=";transport=tls")
    assert statuses(feed_sip(gateway, invite)) == [100]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", None, 488),
        (b"hello", "text/plain", 415),
        (b"v=1\r\n", "application/sdp", 400),
    ],
)
def test_an_invite_needs_an_sdp_offer(
    gateway: SipCore,
    caller: SipTlsCaller,
    body: bytes,
    content_type: str | None,
    status: int,
) -> None:
    uri = f"sips:{CONFERENCE}@127.0.0.1:5061"
    request = caller.request("INVITE", uri, body=body, content_type=content_type)
    assert statuses(feed_sip(gateway, request)) == [status]


def test_options_bye_cancel_and_other_methods(gateway: SipCore, caller: SipTlsCaller) -> None:
    uri = "sips:127.0.0.1:5061"
    options = sent_sip(feed_sip(gateway, caller.request("OPTIONS", uri)))
    assert isinstance(options[0], sip.SipResponse) and options[0].status == 200
    assert "INVITE" in (options[0].header("Allow") or "")
    assert statuses(feed_sip(gateway, caller.request("REGISTER", uri))) == [405]
    assert statuses(feed_sip(gateway, caller.request("BYE", uri, to_tag="nope"))) == [481]
    assert statuses(feed_sip(gateway, caller.request("CANCEL", uri))) == [481]
    assert feed_sip(gateway, caller.request("ACK", uri)) == []  # ACK is never answered


def test_the_lobby_is_182_queued_and_a_rejection_is_603(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE))
    call_id = of(OpenMedia, actions)[0].call_id
    gateway.handle(MediaOpened(call_id, "127.0.0.1", 41000))
    assert statuses(gateway.handle(Lobby(call_id))) == [182]
    refused = gateway.handle(Refused(call_id, Refusal.REJECTED, "declined by a moderator"))
    assert statuses(refused) == [603]
    assert of(LeaveConference, refused) == [LeaveConference(call_id)]
    assert call_id not in gateway.calls


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.FORBIDDEN, 403),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.CONFLICT, 404),
        (ErrorCode.UNAUTHENTICATED, 503),
    ],
)
def test_the_meetings_refusals_map_to_sip(
    gateway: SipCore, caller: SipTlsCaller, code: ErrorCode, status: int
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE))
    call_id = of(OpenMedia, actions)[0].call_id
    gateway.handle(MediaOpened(call_id, "127.0.0.1", 41000))
    refused = gateway.handle(Refused(call_id, refusal_of(code), "why"))
    assert statuses(refused) == [status]
    [response] = sent_sip(refused)
    assert response.header("Warning") == '399 roomtrust-interop "why"'


def test_cancel_ends_a_pending_invite_with_487(gateway: SipCore, caller: SipTlsCaller) -> None:
    invite = caller.invite(CONFERENCE)
    call_id = of(OpenMedia, feed_sip(gateway, invite))[0].call_id
    cancel = caller.request(
        "CANCEL", invite.uri, cseq=invite.cseq.number, branch=invite.vias[0].branch
    )
    actions = feed_sip(gateway, cancel)
    assert sorted(statuses(actions)) == [200, 487]
    assert of(LeaveConference, actions) == [LeaveConference(call_id)]


def test_bye_from_the_caller_and_bye_to_the_caller(gateway: SipCore, caller: SipTlsCaller) -> None:
    call_id, actions = admitted_sip_call(gateway, caller)
    to_tag = sent_sip(actions)[0].to.tag
    invite_uri = f"sips:{CONFERENCE}*4321@127.0.0.1:5061"
    bye = feed_sip(gateway, caller.request("BYE", invite_uri, to_tag=to_tag))
    assert statuses(bye) == [200] and of(LeaveConference, bye)
    # a second call, ended by the conference: the gateway hangs up with a BYE of its own
    other = SipTlsCaller("127.0.0.1", 5061, Path("unused"))
    call_id, actions = admitted_sip_call(gateway, other)
    ended = gateway.handle(Ended(call_id, "the conference ended"))
    [request] = sent_sip(ended)
    assert isinstance(request, sip.SipRequest) and request.method == "BYE"
    assert request.uri == "sips:room-12@127.0.0.1:5061"
    assert request.vias[0].transport == "TLS"
    assert request.from_.tag == sent_sip(actions)[0].to.tag and request.to.tag == other.tag
    assert request.call_id == other.call_id


def test_the_conference_ending_before_admission_is_503(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    call_id = of(OpenMedia, feed_sip(gateway, caller.invite(CONFERENCE)))[0].call_id
    gateway.handle(MediaOpened(call_id, "127.0.0.1", 41000))
    ended = gateway.handle(Ended(call_id, ""))
    [response] = sent_sip(ended)
    assert isinstance(response, sip.SipResponse) and response.status == 503
    assert response.header("Warning") == '399 roomtrust-interop "the conference ended"'
    assert of(LeaveConference, ended) == [LeaveConference(call_id)]


def test_a_reinvite_cannot_downgrade_to_plain_rtp(gateway: SipCore, caller: SipTlsCaller) -> None:
    call_id, actions = admitted_sip_call(gateway, caller)
    to_tag = sent_sip(actions)[0].to.tag
    downgrade = caller.invite(CONFERENCE, proto="RTP/AVP", with_key=False, to_tag=to_tag)
    refused = feed_sip(gateway, downgrade)
    assert statuses(refused) == [488] and not of(StartMedia, refused)
    assert gateway.calls[call_id].state is SipState.CONFIRMED  # the call goes on, still SRTP
    rekey = feed_sip(gateway, caller.invite(CONFERENCE, to_tag=to_tag))
    assert statuses(rekey) == [200] and of(StartMedia, rekey)


def test_framing_loss_closes_the_connection_and_keepalives_are_answered(gateway: SipCore) -> None:
    assert gateway.handle(DataReceived(SIP_CONN, b"\r\n\r\n")) == [Send(SIP_CONN, b"\r\n")]
    actions = gateway.handle(DataReceived(SIP_CONN, b"OPTIONS sips:x SIP/2.0\r\n\r\n"))
    assert CloseConnection(SIP_CONN) in actions and not of(Send, actions)


def test_losing_the_connection_hangs_up_its_calls(gateway: SipCore, caller: SipTlsCaller) -> None:
    call_id, _ = admitted_sip_call(gateway, caller)
    assert of(LeaveConference, gateway.handle(ConnectionLost(SIP_CONN))) == [
        LeaveConference(call_id)
    ]
    assert gateway.calls == {}


# -- the call's states -----------------------------------------------------------------------------


def call_in(gw: SipCore, caller: SipTlsCaller, state: SipState) -> SipCall:
    """A call brought to `state` by the legal events, each checked on the way."""
    call_id = of(OpenMedia, feed_sip(gw, caller.invite(CONFERENCE)))[0].call_id
    call = gw.calls[call_id]
    steps: list[tuple[Event, SipState]] = [
        (MediaOpened(call_id, "127.0.0.1", 41000), SipState.JOINING),
        (Lobby(call_id), SipState.QUEUED),
        (Admitted(call_id), SipState.CONFIRMED),
        (Ended(call_id, "the conference ended"), SipState.ENDED),
    ]
    assert call.state is SipState.OPENING_MEDIA
    for event, reached in steps:
        if call.state is state:
            break
        assert gw.handle(event), f"{event} from {call.state} is a transition"
        assert call.state is reached
    assert call.state is state
    return call


def reinvite(caller: SipTlsCaller, call: SipCall) -> Event:
    return DataReceived(SIP_CONN, caller.invite(CONFERENCE, to_tag=call.to_tag).encode())


def cancel(caller: SipTlsCaller, call: SipCall) -> Event:
    invite = call.invite
    request = caller.request(
        "CANCEL", invite.uri, cseq=invite.cseq.number, branch=invite.vias[0].branch
    )
    return DataReceived(SIP_CONN, request.encode())


def bye(caller: SipTlsCaller, call: SipCall) -> Event:
    request = caller.request("BYE", call.invite.uri, to_tag=call.to_tag)
    return DataReceived(SIP_CONN, request.encode())


def media(_: SipTlsCaller, call: SipCall) -> Event:
    return MediaOpened(call.call_id, "127.0.0.1", 41999)


def lobby(_: SipTlsCaller, call: SipCall) -> Event:
    return Lobby(call.call_id)


def admitted(_: SipTlsCaller, call: SipCall) -> Event:
    return Admitted(call.call_id)


def refused(_: SipTlsCaller, call: SipCall) -> Event:
    return Refused(call.call_id, Refusal.FORBIDDEN, "why")


def ended(_: SipTlsCaller, call: SipCall) -> Event:
    return Ended(call.call_id, "the conference ended")


MakeEvent = Callable[[SipTlsCaller, SipCall], Event]

# Every event that is not a transition of the state, and the only answer it gets on the wire.
ILLEGAL: list[tuple[SipState, MakeEvent, list[int]]] = [
    (SipState.OPENING_MEDIA, lobby, []),
    (SipState.OPENING_MEDIA, admitted, []),
    (SipState.OPENING_MEDIA, reinvite, [491]),
    (SipState.JOINING, media, []),
    (SipState.JOINING, reinvite, [491]),
    (SipState.QUEUED, media, []),
    (SipState.QUEUED, lobby, []),
    (SipState.QUEUED, reinvite, [491]),
    (SipState.CONFIRMED, media, []),
    (SipState.CONFIRMED, lobby, []),
    (SipState.CONFIRMED, admitted, []),
    (SipState.CONFIRMED, cancel, [481]),
    (SipState.ENDED, lobby, []),
    (SipState.ENDED, admitted, []),
    (SipState.ENDED, refused, []),
    (SipState.ENDED, ended, []),
    (SipState.ENDED, reinvite, [481]),
    (SipState.ENDED, cancel, [481]),
    (SipState.ENDED, bye, [481]),
]


@pytest.mark.parametrize(
    ("state", "make", "answer"),
    ILLEGAL,
    ids=[f"{state.name}-{make.__name__}" for state, make, _ in ILLEGAL],
)
def test_an_event_that_is_no_transition_of_the_state_changes_nothing(
    gateway: SipCore, caller: SipTlsCaller, state: SipState, make: MakeEvent, answer: list[int]
) -> None:
    call = call_in(gateway, caller, state)
    before = (call.media, call.local_key, dict(gateway.calls))
    actions = gateway.handle(make(caller, call))
    assert statuses(actions) == answer
    assert not [a for a in actions if not isinstance(a, Send | CloseConnection) and a.call_id]
    assert call.state is state
    assert (call.media, call.local_key, dict(gateway.calls)) == before


def test_media_for_a_call_that_is_gone_is_given_back(
    gateway: SipCore, caller: SipTlsCaller
) -> None:
    call = call_in(gateway, caller, SipState.ENDED)
    assert gateway.handle(media(caller, call)) == [LeaveConference(call.call_id)]


@pytest.mark.parametrize(
    ("state", "make", "reached"),
    [
        (SipState.OPENING_MEDIA, cancel, SipState.ENDED),
        (SipState.JOINING, admitted, SipState.CONFIRMED),
        (SipState.JOINING, cancel, SipState.ENDED),
        (SipState.QUEUED, cancel, SipState.ENDED),
        (SipState.QUEUED, refused, SipState.ENDED),
        (SipState.CONFIRMED, reinvite, SipState.CONFIRMED),
        (SipState.CONFIRMED, bye, SipState.ENDED),
        (SipState.CONFIRMED, refused, SipState.ENDED),
    ],
)
def test_the_same_events_are_transitions_where_the_state_allows_them(
    gateway: SipCore, caller: SipTlsCaller, state: SipState, make: MakeEvent, reached: SipState
) -> None:
    """The control for the test above: these events do act from these states."""
    call = call_in(gateway, caller, state)
    actions = gateway.handle(make(caller, call))
    assert call.state is reached
    assert [a for a in actions if not isinstance(a, Send | CloseConnection) and a.call_id]


# -- robustness ------------------------------------------------------------------------------------

_SIP = SipTlsCaller("127.0.0.1", 5061, Path("unused")).invite(CONFERENCE).encode()


@settings(max_examples=150, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
    cut=st.integers(1, 600),
)
def test_no_mangled_input_makes_the_core_raise(edits: list[tuple[int, int]], cut: int) -> None:
    """Bytes flipped anywhere, delivered in pieces: the core answers, drops or closes, never
    raises, and whatever it sends is a well-formed SIP message."""
    gw = SipCore("127.0.0.1", 5061, secrets.token_bytes)
    gw.handle(Connected(SIP_CONN, ("127.0.0.1", 50000), "TLSv1.3"))
    data = bytearray(_SIP)
    for index, value in edits:
        data[index % len(data)] = value
    actions: list[Action] = []
    for start in range(0, len(data), cut):
        actions += gw.handle(DataReceived(SIP_CONN, bytes(data[start : start + cut])))
    sent = b"".join(a.data for a in actions if isinstance(a, Send))
    assert not any(isinstance(m, sip.SipError) for m in sip.SipStream().feed(sent))
