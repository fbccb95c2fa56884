"""The sans-IO conference session: events in, actions out (MT-06, MT-08, MT-09, MT-16, MT-17,
MT-18). Lobby and escalation, moderation, chat that reaches only admitted participants, recording
and streaming notices, the CDR leg of each kind, the end of a session, and events it refuses
without changing anything."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest

from protocol import signaling as wire
from protocol.signaling import MessageType, NoticeKind
from services.common.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from services.meeting.domain import permissions as perms
from services.meeting.domain.legs import (
    H323_TRANSPORT,
    PSTN_TRANSPORT,
    SIGNALING_TRANSPORT,
    SIPS_TRANSPORT,
    LegKind,
)
from services.meeting.domain.session import CLOSE_ENDED, ConferenceSession
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

AT = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
USER = perms.ROLES[perms.USER]
OWNER = "acct-owner"


def session(locked: bool = False, escalation: bool = False) -> ConferenceSession:
    return ConferenceSession.open(
        "sa-0123456789abcdef",
        "ent-1",
        OWNER,
        call_id="call-1",
        locked=locked,
        escalation=escalation,
    )


def join(pid: str, leg: LegKind = LegKind.CLIENT, permissions: frozenset[str] = USER) -> Join:
    account = OWNER if pid == "owner" else f"acct-{pid}"
    return Join(pid, account, pid.title(), permissions, leg)


def sent(actions: Sequence[Action], kind: MessageType | None = None) -> dict[str, list[Any]]:
    """Who got which messages (of one type)."""
    out: dict[str, list[Any]] = {}
    for action in actions:
        if isinstance(action, Send) and kind in (None, action.message.TYPE):
            out.setdefault(action.to, []).append(action.message)
    return out


def feed(s: ConferenceSession, *events: Event) -> list[Action]:
    """Events in order, each followed by the driver's answer to an `OpenLeg` (leg IDs from 100)."""
    actions: list[Action] = []
    for event in events:
        for action in s.handle(event):
            actions.append(action)
            if isinstance(action, OpenLeg):
                actions += s.handle(LegOpened(action.participant_id, 100 + len(s.legs)))
    return actions


def refused(s: ConferenceSession, event: Event, error: type[DomainError]) -> DomainError:
    """The session refuses the event and changes nothing."""
    before = json.dumps(s.snapshot(), sort_keys=True)
    chat_before = list(s.chat.messages)
    with pytest.raises(error) as caught:
        s.handle(event)
    assert json.dumps(s.snapshot(), sort_keys=True) == before
    assert s.chat.messages == chat_before
    return caught.value


def in_call(*guests: str, locked: bool = False) -> ConferenceSession:
    s = session(locked=locked)
    feed(s, join("owner"))
    for guest in guests:
        feed(s, join(guest))
        if locked:
            feed(s, Admit("owner", guest))
    return s


# -- lobby and escalation ------------------------------------------------------------------------


def test_locked_conference_guest_knocks_and_gets_in_only_when_admitted() -> None:
    s = session(locked=True)
    first = feed(s, join("owner"))
    assert first[:2] == [
        Send("owner", wire.Admitted(s.conference_id, "owner", True)),
        Send("owner", s.lobby.roster_message("owner")),
    ]
    assert OpenCall("call-1", s.conference_id, "ent-1") in first
    assert IssueKeys("owner") in first

    knock = feed(s, join("guest"))
    assert [m.TYPE for m in sent(knock)["guest"]] == [MessageType.LOBBY_WAITING]
    assert sent(knock, MessageType.LOBBY_KNOCK)["owner"][0].participant.participant_id == "guest"
    assert not [a for a in knock if isinstance(a, OpenLeg | IssueKeys | OpenCall)]
    roster = sent(knock, MessageType.ROSTER)["owner"][-1]
    assert [p.participant_id for p in roster.lobby] == ["guest"]

    admitted = feed(s, Admit("owner", "guest"))
    assert [m.TYPE for m in sent(admitted)["guest"]] == [MessageType.ADMITTED, MessageType.ROSTER]
    assert OpenLeg("call-1", "guest", "acct-guest", True, SIGNALING_TRANSPORT) in admitted
    assert admitted[-1] == IssueKeys("guest")  # keys only after everything else
    assert not [a for a in admitted if isinstance(a, OpenCall)]  # one call record per session
    assert s.legs == {"owner": 100, "guest": 101}


def test_rejected_guest_is_closed_and_never_sees_the_roster() -> None:
    s = session(locked=True)
    feed(s, join("owner"), join("eve"))
    actions = feed(s, Reject("owner", "eve"))
    assert [m.TYPE for m in sent(actions)["eve"]] == [MessageType.REJECTED]
    assert Close("eve", wire.SignalingClose.FORBIDDEN, "rejected by a moderator") in actions
    assert not [a for a in actions if isinstance(a, OpenLeg | IssueKeys)]
    refused(s, Admit("owner", "eve"), NotFound)


def test_escalation_and_lock_from_the_api_are_lobby_events() -> None:
    s = in_call("ann")
    actions = feed(s, Reconfigure(escalation=True))
    assert set(sent(actions, MessageType.ROSTER)) == {"owner", "ann"}
    assert not [a for a in actions if isinstance(a, PersistLock)]  # the API stored it already
    waits = feed(s, join("bob"))
    assert MessageType.LOBBY_WAITING in [m.TYPE for m in sent(waits)["bob"]]
    assert "bob" in s.lobby.waiting

    feed(s, Reconfigure(escalation=False, locked=True))
    assert s.lobby.locked and not s.lobby.escalation
    feed(s, Reconfigure(locked=False))
    assert "bob" in s.lobby.waiting  # unlocking admits nobody by itself
    feed(s, join("cat"))
    assert "cat" in s.lobby.participants  # and newcomers get in again


def test_a_moderator_lock_is_persisted_before_the_roster_goes_out() -> None:
    s = in_call("ann")
    actions = feed(s, Lock("owner", True))
    assert actions[0] == PersistLock(s.conference_id, True)
    assert all(r.locked for r in sent(actions, MessageType.ROSTER)["ann"])
    refused(s, Lock("ann", False), Forbidden)
    assert s.lobby.locked


def test_waiting_and_unknown_participants_can_do_nothing_but_leave() -> None:
    s = session(locked=True)
    feed(s, join("owner"), join("bob"))
    for event in (
        Admit("bob", "bob"),
        Lock("bob", False),
        Chat("bob", "hi", None, True, AT),
        Mute("bob", wire.ALL),
        Remove("bob", "owner"),
        SetMedia("bob", False, None),
        RecordStart("bob", "rec-1", USER, True, AT),
        End("bob"),
    ):
        error = refused(s, event, Forbidden)
        assert "lobby" in error.reason
    refused(s, Chat("nobody", "hi", None, True, AT), Forbidden)
    refused(s, join("owner"), Conflict)  # the same connection twice
    assert feed(s, Leave("bob")) and "bob" not in s.lobby.waiting


# -- moderation ---------------------------------------------------------------------------------


def test_moderator_mutes_everyone_else_and_removes_one() -> None:
    s = in_call("ann", "ben")
    refused(s, Mute("ann", wire.ALL), Forbidden)
    muted = feed(s, Mute("owner", wire.ALL))
    assert set(sent(muted, MessageType.MUTED)) == {"ann", "ben"}
    assert {p.participant_id: p.audio for p in s.lobby.participants.values()} == {
        "owner": True,
        "ann": False,
        "ben": False,
    }
    leg = s.legs["ben"]
    removed = feed(s, Remove("owner", "ben"))
    assert sent(removed, MessageType.REMOVED)["ben"] == [wire.Removed("Owner")]
    assert Close("ben", wire.SignalingClose.REMOVED, "removed by a moderator") in removed
    assert WithdrawKeys("ben", rekey=True) in removed
    assert CloseLeg(leg) in removed
    assert "ben" not in s.legs and "ben" not in s.lobby.participants
    refused(s, Remove("owner", "owner"), Invalid)
    refused(s, Remove("owner", "ghost"), Invalid)


def test_own_media_needs_the_permission() -> None:
    s = session()
    feed(s, join("owner"), join("room", permissions=perms.ROOM_SYSTEM - {perms.SELF_MEDIA}))
    refused(s, SetMedia("room", False, None), Forbidden)
    changed = feed(s, SetMedia("owner", None, False))
    state = sent(changed, MessageType.MEDIA_STATE)["room"][0]
    assert (state.audio, state.video) == (True, False)


# -- chat ---------------------------------------------------------------------------------------


def test_chat_reaches_only_admitted_participants() -> None:
    s = in_call("ann", locked=True)
    feed(s, join("lurker"))  # waits in the lobby
    posted = feed(s, Chat("ann", "good morning", None, True, AT))
    receivers = set(sent(posted, MessageType.CHAT))
    assert receivers == {"owner", "ann"}
    private = feed(s, Chat("ann", "psst", "owner", True, AT))
    assert set(sent(private, MessageType.CHAT)) == {"ann", "owner"}
    assert all(m.private for m in sent(private)["owner"])

    late = feed(s, Admit("owner", "lurker"))
    history = [m.text for m in sent(late, MessageType.CHAT)["lurker"]]
    assert history == ["good morning"]  # the public history, never the private message


def test_chat_is_refused_where_disabled_or_not_permitted() -> None:
    s = session()
    feed(s, join("owner"), join("phone", LegKind.PSTN, frozenset({perms.CALL})))
    assert "disabled chat" in refused(s, Chat("owner", "hi", None, False, AT), Forbidden).reason
    refused(s, Chat("phone", "hi", None, True, AT), Forbidden)
    refused(s, Chat("owner", "", None, True, AT), Invalid)
    refused(s, Chat("owner", "hi", "ghost", True, AT), Invalid)


# -- recording and streaming --------------------------------------------------------------------


def test_recording_notices_reach_everyone_and_later_arrivals() -> None:
    s = in_call("ann", "rosa")
    started = feed(s, RecordStart("rosa", "rec-1", USER, True, AT))
    assert started[0] == StartRecording(
        "rec-1", s.conference_id, "acct-rosa", (OWNER, "acct-ann", "acct-rosa")
    )
    notices = sent(started, MessageType.NOTICE)
    assert set(notices) == {"owner", "ann", "rosa"}
    notice = notices["ann"][0]
    assert notice.kind is NoticeKind.RECORDING_STARTED and notice.recording_id == "rec-1"
    assert notice.by == "Rosa" and "Rosa" in notice.text and notice.at == AT.isoformat()

    late = feed(s, join("luis"))
    assert AddRecordingParticipant("rec-1", "acct-luis") in late
    assert sent(late, MessageType.NOTICE)["luis"] == [notice]

    refused(s, RecordStart("ann", "rec-2", USER, True, AT), Invalid)  # already recording
    refused(s, RecordStop("ann", AT), Forbidden)  # neither the recorder nor a moderator
    stopped = feed(s, RecordStop("owner", AT))  # a moderator may
    assert stopped[0] == StopRecording("rec-1")
    assert set(sent(stopped, MessageType.NOTICE)) == {"owner", "ann", "rosa", "luis"}
    assert sent(stopped)["ann"][0].kind is NoticeKind.RECORDING_STOPPED
    refused(s, RecordStop("owner", AT), Invalid)
    assert not [a for a in feed(s, join("zoe")) if isinstance(a, AddRecordingParticipant)]


def test_recording_needs_the_switch_and_the_permission() -> None:
    s = in_call("ann")
    error = refused(s, RecordStart("ann", "rec-1", USER, False, AT), Forbidden)
    assert "administrator" in error.reason
    refused(s, RecordStart("ann", "rec-1", USER - {perms.RECORD}, True, AT), Forbidden)


def test_only_the_creator_streams_where_enabled() -> None:
    s = in_call("ann")
    refused(s, StreamStart("ann", USER, True, AT), Forbidden)
    refused(s, StreamStart("owner", USER, False, AT), Forbidden)
    refused(s, StreamStart("owner", USER - {perms.LIVE_STREAM}, True, AT), Forbidden)
    started = feed(s, StreamStart("owner", USER, True, AT))
    assert {m.kind for ms in sent(started).values() for m in ms} == {NoticeKind.STREAMING_STARTED}
    assert set(sent(started)) == {"owner", "ann"}
    late = feed(s, join("bob"))
    assert [m.kind for m in sent(late, MessageType.NOTICE)["bob"]] == [NoticeKind.STREAMING_STARTED]
    stopped = feed(s, StreamStop("owner", USER, True, AT))
    assert [m.kind for m in sent(stopped)["bob"]] == [NoticeKind.STREAMING_STOPPED]
    assert not sent(feed(s, join("cy")), MessageType.NOTICE)


# -- leg kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leg", "encrypted", "transport"),
    [
        (LegKind.CLIENT, True, SIGNALING_TRANSPORT),
        (LegKind.PSTN, False, PSTN_TRANSPORT),
        (LegKind.SIPS, True, SIPS_TRANSPORT),
        (LegKind.H323, True, H323_TRANSPORT),
    ],
)
def test_each_leg_kind_opens_its_cdr_leg(leg: LegKind, encrypted: bool, transport: str) -> None:
    s = in_call()
    actions = feed(s, join("caller", leg))
    assert OpenLeg("call-1", "caller", "acct-caller", encrypted, transport) in actions
    roster = sent(actions, MessageType.ROSTER)["owner"][-1]
    shown = {p.participant_id: p.encrypted for p in roster.participants}
    assert shown == {"owner": True, "caller": encrypted}


# -- the end ------------------------------------------------------------------------------------


def test_moderator_ends_the_conference_for_everyone() -> None:
    s = in_call("ann", locked=True)
    feed(s, join("waiter"), RecordStart("ann", "rec-1", USER, True, AT))
    refused(s, End("ann"), Forbidden)
    actions = feed(s, End("owner"))
    for pid in ("owner", "ann", "waiter"):
        assert sent(actions)[pid] == [wire.ConferenceEnded(s.conference_id)]
        assert Close(pid, CLOSE_ENDED, "the conference has ended") in actions
        assert WithdrawKeys(pid, rekey=False) in actions
    # the record closes before anyone is told, so whoever saw the end reads a closed CDR
    assert actions[:2] == [StopRecording("rec-1"), CloseCall("call-1")]
    assert actions[-1] == FinishConference(s.conference_id)
    assert s.ended and s.is_empty() and not s.chat.messages and not s.legs
    assert s.handle(Leave("ann")) == [] and s.handle(Terminate()) == []
    assert s.handle(Reconfigure(locked=False)) == []  # an API change racing the end
    with pytest.raises(Forbidden):
        s.handle(join("late"))
    with pytest.raises(Forbidden):
        s.handle(Chat("owner", "hi", None, True, AT))


def test_the_last_one_leaving_ends_the_session() -> None:
    s = in_call("ann")
    leg = s.legs["ann"]
    assert feed(s, Leave("ann"))[:2] == [WithdrawKeys("ann", rekey=True), CloseLeg(leg)]
    assert not s.ended
    last = feed(s, Leave("owner"))
    assert last[-2:] == [CloseCall("call-1"), FinishConference(s.conference_id)]
    assert s.ended


def test_a_lobby_that_empties_before_anyone_was_admitted_ends_without_a_call() -> None:
    s = session(locked=True)
    feed(s, join("early"))
    assert feed(s, Leave("early")) == [FinishConference(s.conference_id)]


def test_a_leg_written_after_its_participant_left_is_closed() -> None:
    s = in_call()
    assert s.handle(LegOpened("ghost", 7)) == [CloseLeg(7)]


# -- written down and rebuilt -------------------------------------------------------------------


def test_a_rebuilt_session_carries_on_where_the_first_stopped_without_its_chat() -> None:
    s = in_call("ann", locked=True)
    feed(
        s,
        join("waiter", LegKind.PSTN, frozenset({perms.CALL})),
        RecordStart("ann", "rec-1", USER, True, AT),
        StreamStart("owner", USER, True, AT),
        Chat("ann", "a secret", None, True, AT),
        Mute("owner", "ann"),
    )
    data = json.loads(json.dumps(s.snapshot()))
    assert "a secret" not in json.dumps(data)  # chat is never written down (MT-18)
    rebuilt = ConferenceSession.restore(data)
    assert rebuilt.snapshot() == s.snapshot()
    original, copy = feed(s, Admit("owner", "waiter")), feed(rebuilt, Admit("owner", "waiter"))
    without_chat = [
        a for a in original if not (isinstance(a, Send) and a.message.TYPE == MessageType.CHAT)
    ]
    assert copy == without_chat and len(original) == len(copy) + 1
    assert feed(s, End("owner")) == feed(rebuilt, End("owner"))
    with pytest.raises(ValueError):
        ConferenceSession.restore({**data, "version": 99})
