"""The interop gateway's sans-IO core (MT-07): SIP over TLS and H.323 with H.235, events in and
actions out, with no socket, clock or meeting service."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.meeting.interop import core, h323, sdp, sip
from services.meeting.interop.client import H323Caller, SipTlsCaller

CONFERENCE = "sa-0123456789abcdef"
SIP_CONN, H323_CONN = 1, 2


@pytest.fixture
def gateway() -> core.InteropCore:
    gw = core.InteropCore("127.0.0.1", 5061, secrets.token_bytes)
    gw.handle(core.Connected(SIP_CONN, core.SIP, ("127.0.0.1", 50001), "TLSv1.3"))
    gw.handle(core.Connected(H323_CONN, core.H323, ("127.0.0.1", 50002), "TLSv1.3"))
    return gw


@pytest.fixture
def caller() -> SipTlsCaller:
    return SipTlsCaller("127.0.0.1", 5061, Path("unused-ca.pem"))


def sent_sip(actions: list[core.Action]) -> list[sip.SipResponse | sip.SipRequest]:
    stream = sip.SipStream()
    out: list[sip.SipResponse | sip.SipRequest] = []
    for action in actions:
        if isinstance(action, core.Send):
            out += [
                m
                for m in stream.feed(action.data)
                if not isinstance(m, sip.SipError | sip.KeepAlive)
            ]
    return out


def statuses(actions: list[core.Action]) -> list[int]:
    return [m.status for m in sent_sip(actions) if isinstance(m, sip.SipResponse)]


def of(kind: type[Any], actions: list[core.Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def feed_sip(gw: core.InteropCore, request: sip.SipRequest) -> list[core.Action]:
    return gw.handle(core.DataReceived(SIP_CONN, request.encode()))


def admitted_sip_call(gw: core.InteropCore, caller: SipTlsCaller) -> tuple[str, list[core.Action]]:
    first = feed_sip(gw, caller.invite(CONFERENCE, password="4321"))
    assert statuses(first) == [100]
    call_id = of(core.OpenMedia, first)[0].call_id
    joins = gw.handle(core.MediaOpened(call_id, "127.0.0.1", 41000))
    assert of(core.JoinConference, joins) == [
        core.JoinConference(
            call_id, "sips", CONFERENCE, "4321", "sips:room-12@caller.example", "Polycom Room"
        )
    ]
    return call_id, gw.handle(core.ConferenceAnswer(call_id, "admitted"))


# -- SIP -------------------------------------------------------------------------------------------


def test_an_srtp_invite_is_answered_with_srtp_once_the_meeting_admits_it(
    gateway: core.InteropCore, caller: SipTlsCaller
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
    [start] = of(core.StartMedia, actions)
    assert start == core.StartMedia(call_id, caller.key, ours.key, ("127.0.0.1", 40000))


def test_a_plain_rtp_offer_gets_488_and_never_reaches_the_meeting(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE, proto="RTP/AVP", with_key=False))
    [refusal] = sent_sip(actions)
    assert isinstance(refusal, sip.SipResponse) and refusal.status == 488
    assert (refusal.header("Warning") or "").startswith("302 roomtrust-interop")
    assert not of(core.OpenMedia, actions) and not of(core.JoinConference, actions)
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
    gateway: core.InteropCore, caller: SipTlsCaller, options: dict[str, Any], status: int
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE, **options))
    assert statuses(actions) == [status]
    assert not of(core.JoinConference, actions) and not of(core.OpenMedia, actions)


@pytest.mark.parametrize(
    ("options", "status"),
    [({"max_forwards": 0}, 483), ({"extra": [("Max-Forwards", "9")]}, 400), ({}, 100)],
)
def test_max_forwards(
    gateway: core.InteropCore, caller: SipTlsCaller, options: dict[str, Any], status: int
) -> None:
    assert statuses(feed_sip(gateway, caller.invite(CONFERENCE, **options))) == [status]


def test_the_control_case_with_tls_everywhere_is_accepted(
    gateway: core.InteropCore, caller: SipTlsCaller
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
    gateway: core.InteropCore,
    caller: SipTlsCaller,
    body: bytes,
    content_type: str | None,
    status: int,
) -> None:
    uri = f"sips:{CONFERENCE}@127.0.0.1:5061"
    request = caller.request("INVITE", uri, body=body, content_type=content_type)
    assert statuses(feed_sip(gateway, request)) == [status]


def test_options_bye_cancel_and_other_methods(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    uri = "sips:127.0.0.1:5061"
    options = sent_sip(feed_sip(gateway, caller.request("OPTIONS", uri)))
    assert isinstance(options[0], sip.SipResponse) and options[0].status == 200
    assert "INVITE" in (options[0].header("Allow") or "")
    assert statuses(feed_sip(gateway, caller.request("REGISTER", uri))) == [405]
    assert statuses(feed_sip(gateway, caller.request("BYE", uri, to_tag="nope"))) == [481]
    assert statuses(feed_sip(gateway, caller.request("CANCEL", uri))) == [481]
    assert feed_sip(gateway, caller.request("ACK", uri)) == []  # ACK is never answered


def test_the_lobby_is_182_queued_and_a_rejection_is_603(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE))
    call_id = of(core.OpenMedia, actions)[0].call_id
    gateway.handle(core.MediaOpened(call_id, "127.0.0.1", 41000))
    assert statuses(gateway.handle(core.ConferenceAnswer(call_id, "lobby"))) == [182]
    refused = gateway.handle(core.ConferenceAnswer(call_id, "refused", "Rejected", "rejected"))
    assert statuses(refused) == [603]
    assert of(core.LeaveConference, refused) == [core.LeaveConference(call_id)]
    assert call_id not in gateway.calls


@pytest.mark.parametrize(
    ("error", "status"),
    [("Forbidden", 403), ("NotFound", 404), ("Conflict", 404), ("Unauthenticated", 503)],
)
def test_the_meetings_refusals_map_to_sip(
    gateway: core.InteropCore, caller: SipTlsCaller, error: str, status: int
) -> None:
    actions = feed_sip(gateway, caller.invite(CONFERENCE))
    call_id = of(core.OpenMedia, actions)[0].call_id
    gateway.handle(core.MediaOpened(call_id, "127.0.0.1", 41000))
    refused = gateway.handle(core.ConferenceAnswer(call_id, "refused", error, "why"))
    assert statuses(refused) == [status]


def test_cancel_ends_a_pending_invite_with_487(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    invite = caller.invite(CONFERENCE)
    call_id = of(core.OpenMedia, feed_sip(gateway, invite))[0].call_id
    cancel = caller.request(
        "CANCEL", invite.uri, cseq=invite.cseq.number, branch=invite.vias[0].branch
    )
    actions = feed_sip(gateway, cancel)
    assert sorted(statuses(actions)) == [200, 487]
    assert of(core.LeaveConference, actions) == [core.LeaveConference(call_id)]


def test_bye_from_the_caller_and_bye_to_the_caller(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    call_id, actions = admitted_sip_call(gateway, caller)
    to_tag = sent_sip(actions)[0].to.tag
    invite_uri = f"sips:{CONFERENCE}*4321@127.0.0.1:5061"
    bye = feed_sip(gateway, caller.request("BYE", invite_uri, to_tag=to_tag))
    assert statuses(bye) == [200] and of(core.LeaveConference, bye)
    # a second call, ended by the conference: the gateway hangs up with a BYE of its own
    other = SipTlsCaller("127.0.0.1", 5061, Path("unused"))
    call_id, actions = admitted_sip_call(gateway, other)
    ended = gateway.handle(core.ConferenceAnswer(call_id, "ended", None, "conference.ended"))
    [request] = sent_sip(ended)
    assert isinstance(request, sip.SipRequest) and request.method == "BYE"
    assert request.uri == "sips:room-12@127.0.0.1:5061"
    assert request.vias[0].transport == "TLS"
    assert request.from_.tag == sent_sip(actions)[0].to.tag and request.to.tag == other.tag
    assert request.call_id == other.call_id


def test_a_reinvite_cannot_downgrade_to_plain_rtp(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    call_id, actions = admitted_sip_call(gateway, caller)
    to_tag = sent_sip(actions)[0].to.tag
    downgrade = caller.invite(CONFERENCE, proto="RTP/AVP", with_key=False, to_tag=to_tag)
    refused = feed_sip(gateway, downgrade)
    assert statuses(refused) == [488] and not of(core.StartMedia, refused)
    assert gateway.calls[call_id].state == "confirmed"  # the call goes on, still SRTP
    rekey = feed_sip(gateway, caller.invite(CONFERENCE, to_tag=to_tag))
    assert statuses(rekey) == [200] and of(core.StartMedia, rekey)


def test_framing_loss_closes_the_connection_and_keepalives_are_answered(
    gateway: core.InteropCore,
) -> None:
    assert gateway.handle(core.DataReceived(SIP_CONN, b"\r\n\r\n")) == [
        core.Send(SIP_CONN, b"\r\n")
    ]
    actions = gateway.handle(core.DataReceived(SIP_CONN, b"OPTIONS sips:x SIP/2.0\r\n\r\n"))
    assert core.CloseConnection(SIP_CONN) in actions and not of(core.Send, actions)


def test_losing_the_connection_hangs_up_its_calls(
    gateway: core.InteropCore, caller: SipTlsCaller
) -> None:
    call_id, _ = admitted_sip_call(gateway, caller)
    assert of(core.LeaveConference, gateway.handle(core.ConnectionLost(SIP_CONN))) == [
        core.LeaveConference(call_id)
    ]
    assert gateway.calls == {}


# -- H.323 -----------------------------------------------------------------------------------------


def h323_out(actions: list[core.Action]) -> list[h323.H225]:
    stream = h323.TpktStream()
    out = []
    for action in actions:
        if isinstance(action, core.Send):
            out += [h323.H225.decode(p) for p in stream.feed(action.data) if isinstance(p, bytes)]
    return out


def test_an_h323_setup_without_h235_is_released_with_security_denied(
    gateway: core.InteropCore,
) -> None:
    plain = H323Caller("127.0.0.1", 1300, Path("unused"))
    setup = plain.setup(CONFERENCE, tokens=[], channels=[h323.plain_audio("127.0.0.1", 4000)])
    actions = gateway.handle(core.DataReceived(H323_CONN, setup.encode()))
    [release] = h323_out(actions)
    assert release.name == "releaseComplete" and release.body["reason"] == "securityDenied"
    assert core.CloseConnection(H323_CONN) in actions
    assert not of(core.JoinConference, actions) and not of(core.OpenMedia, actions)


def test_an_h323_setup_with_h235_is_connected_with_keys_only_the_caller_can_open(
    gateway: core.InteropCore,
) -> None:
    caller = H323Caller("127.0.0.1", 1300, Path("unused"))
    actions = gateway.handle(core.DataReceived(H323_CONN, caller.setup(CONFERENCE).encode()))
    assert [m.name for m in h323_out(actions)] == ["callProceeding"]
    call_id = of(core.OpenMedia, actions)[0].call_id
    [join] = of(core.JoinConference, gateway.handle(core.MediaOpened(call_id, "127.0.0.1", 41002)))
    assert (join.protocol, join.conference_id, join.password) == ("h323", CONFERENCE, None)
    assert [m.name for m in h323_out(gateway.handle(core.ConferenceAnswer(call_id, "lobby")))] == [
        "alerting"
    ]
    connected = gateway.handle(core.ConferenceAnswer(call_id, "admitted"))
    [connect] = h323_out(connected)
    assert connect.name == "connect"
    keys = caller.media_keys(connect)
    [start] = of(core.StartMedia, connected)
    assert keys == {"gatewayToCaller": start.to_caller, "callerToGateway": start.from_caller}
    assert start.caller == ("127.0.0.1", 40002)
    eavesdropper = H323Caller("127.0.0.1", 1300, Path("unused"))
    eavesdropper.call_identifier = caller.call_identifier
    with pytest.raises(h323.H323Error):
        eavesdropper.media_keys(connect)  # without the caller's DH secret the keys stay shut


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("Forbidden", "noPermission"),
        ("NotFound", "unreachableDestination"),
        ("Rejected", "destinationRejection"),
        ("Unavailable", "gatewayResources"),
    ],
)
def test_the_meetings_refusals_map_to_release_reasons(
    gateway: core.InteropCore, error: str, reason: str
) -> None:
    caller = H323Caller("127.0.0.1", 1300, Path("unused"))
    actions = gateway.handle(core.DataReceived(H323_CONN, caller.setup(CONFERENCE).encode()))
    call_id = of(core.OpenMedia, actions)[0].call_id
    gateway.handle(core.MediaOpened(call_id, "127.0.0.1", 41002))
    refused = gateway.handle(core.ConferenceAnswer(call_id, "refused", error, "why"))
    [release] = h323_out(refused)
    assert release.body["reason"] == reason


def test_release_complete_from_the_caller_hangs_up(gateway: core.InteropCore) -> None:
    caller = H323Caller("127.0.0.1", 1300, Path("unused"))
    setup = caller.setup(CONFERENCE)
    call_id = of(core.OpenMedia, gateway.handle(core.DataReceived(H323_CONN, setup.encode())))[0]
    release = h323.release_complete(setup, "undefinedReason")
    actions = gateway.handle(core.DataReceived(H323_CONN, release.encode()))
    assert of(core.LeaveConference, actions) == [core.LeaveConference(call_id.call_id)]


def test_unreadable_h225_is_released_and_non_tpkt_closes(gateway: core.InteropCore) -> None:
    per = h323.tpkt(b"\x08\x02\x00\x09\x05\x7e\x00\x03\x05\x01\x02")
    actions = gateway.handle(core.DataReceived(H323_CONN, per))
    [release] = h323_out(actions)
    assert release.call_reference == 9 and release.cause == h323.CAUSE_INVALID_CONTENTS
    garbage = gateway.handle(core.DataReceived(H323_CONN, b"INVITE sips:x SIP/2.0\r\n"))
    assert core.CloseConnection(H323_CONN) in garbage


# -- robustness ------------------------------------------------------------------------------------

_SIP = SipTlsCaller("127.0.0.1", 5061, Path("unused")).invite(CONFERENCE).encode()
_SETUP = H323Caller("127.0.0.1", 1300, Path("unused")).setup(CONFERENCE, tokens=[]).encode()


@settings(max_examples=150, deadline=None)
@given(
    which=st.sampled_from(["sip", "h323"]),
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
    cut=st.integers(1, 600),
)
def test_no_mangled_input_makes_the_core_raise(
    which: str, edits: list[tuple[int, int]], cut: int
) -> None:
    """Bytes flipped anywhere, delivered in pieces: the core answers, drops or closes, never
    raises, and whatever it sends is a well-formed SIP or H.225.0 message."""
    gw = core.InteropCore("127.0.0.1", 5061, secrets.token_bytes)
    conn = SIP_CONN if which == "sip" else H323_CONN
    gw.handle(core.Connected(conn, which, ("127.0.0.1", 50000), "TLSv1.3"))
    data = bytearray(_SIP if which == "sip" else _SETUP)
    for index, value in edits:
        data[index % len(data)] = value
    actions: list[core.Action] = []
    for start in range(0, len(data), cut):
        actions += gw.handle(core.DataReceived(conn, bytes(data[start : start + cut])))
    sent = b"".join(a.data for a in actions if isinstance(a, core.Send))
    if which == "sip":
        assert not any(isinstance(m, sip.SipError) for m in sip.SipStream().feed(sent))
    else:
        for payload in h323.TpktStream().feed(sent):
            assert isinstance(payload, bytes)
            h323.H225.decode(payload)
