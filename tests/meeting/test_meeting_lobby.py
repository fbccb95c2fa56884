"""MT-09: the sans-IO lobby. Newcomers to a locked conference wait until a moderator admits them;
rejected or waiting joiners never get the roster; no sequence of joins admits anybody by itself."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import signaling as wire
from protocol.signaling import MessageType
from services.common.errors import Conflict, Forbidden, NotFound
from services.meeting.domain.lobby import (
    Admit,
    Admitted,
    Close,
    Departed,
    Emptied,
    Event,
    Join,
    Leave,
    Lobby,
    Reject,
    Send,
    SetLock,
)


def sent(actions: Sequence[object], to: str, kind: MessageType | None = None) -> list[Any]:
    return [
        a.message
        for a in actions
        if isinstance(a, Send) and a.to == to and (kind is None or kind == a.message.TYPE)
    ]


def join(pid: str, moderator: bool = False) -> Join:
    return Join(pid, f"acct-{pid}", pid.title(), moderator)


def test_open_conference_admits_at_once() -> None:
    lobby = Lobby("sa-1")
    actions = lobby.handle(join("ann"))
    assert Admitted("ann", "acct-ann") in actions
    assert sent(actions, "ann", MessageType.ROSTER)


def test_newcomer_waits_until_a_moderator_admits() -> None:
    lobby = Lobby("sa-1", locked=True)
    lobby.handle(join("mod", moderator=True))
    actions = lobby.handle(join("bob"))
    assert sent(actions, "bob", MessageType.LOBBY_WAITING)
    assert not sent(actions, "bob", MessageType.ROSTER)
    assert sent(actions, "mod", MessageType.LOBBY_KNOCK)
    assert "bob" not in lobby.participants
    actions = lobby.handle(Admit("mod", "bob"))
    assert Admitted("bob", "acct-bob") in actions
    roster = sent(actions, "bob", MessageType.ROSTER)[0]
    assert isinstance(roster, wire.Roster)
    assert {p.participant_id for p in roster.participants} == {"mod", "bob"}
    assert roster.lobby == ()


def test_early_arrivals_do_not_skip_the_lobby() -> None:
    # jitsi-meet #7676: participants who arrive before the moderator must still wait
    lobby = Lobby("sa-1", locked=True)
    for name in ("early1", "early2"):
        assert not [a for a in lobby.handle(join(name)) if isinstance(a, Admitted)]
    actions = lobby.handle(join("mod", moderator=True))
    assert [a for a in actions if isinstance(a, Admitted)] == [Admitted("mod", "acct-mod")]
    assert set(lobby.participants) == {"mod"}
    moderator_roster = sent(actions, "mod", MessageType.ROSTER)[-1]
    assert {p.participant_id for p in moderator_roster.lobby} == {"early1", "early2"}


def test_rejected_joiner_gets_no_roster_and_is_closed() -> None:
    lobby = Lobby("sa-1", locked=True)
    history = lobby.handle(join("mod", moderator=True))
    history += lobby.handle(join("eve"))
    history += lobby.handle(Reject("mod", "eve"))
    assert sent(history, "eve", MessageType.REJECTED)
    assert Close("eve", 4403, "rejected by a moderator") in history
    assert not sent(history, "eve", MessageType.ROSTER)
    assert "eve" not in lobby.waiting and "eve" not in lobby.participants
    with pytest.raises(NotFound):
        lobby.handle(Admit("mod", "eve"))


def test_only_moderators_admit_reject_or_lock() -> None:
    lobby = Lobby("sa-1", escalation=True)
    lobby.handle(join("mod", moderator=True))
    lobby.handle(join("bob"))
    lobby.handle(Admit("mod", "bob"))
    lobby.handle(join("carl"))
    for event in (Admit("bob", "carl"), Reject("bob", "carl"), SetLock("bob", False)):
        with pytest.raises(Forbidden):
            lobby.handle(event)
    with pytest.raises(Forbidden):  # a waiting joiner cannot admit itself
        lobby.handle(Admit("carl", "carl"))
    assert "carl" in lobby.waiting


def test_joining_twice_on_one_connection_is_refused() -> None:
    lobby = Lobby("sa-1", locked=True)
    lobby.handle(join("bob"))
    with pytest.raises(Conflict):
        lobby.handle(join("bob"))


def test_last_participant_leaving_empties_the_conference() -> None:
    lobby = Lobby("sa-1")
    lobby.handle(join("ann"))
    assert lobby.handle(Leave("ann")) == [Departed("ann", "acct-ann"), Emptied()]


def test_unlocking_does_not_admit_those_already_waiting() -> None:
    lobby = Lobby("sa-1", locked=True)
    lobby.handle(join("mod", moderator=True))
    lobby.handle(join("bob"))
    lobby.handle(SetLock("mod", False))
    assert "bob" in lobby.waiting
    assert [a for a in lobby.handle(join("cat")) if isinstance(a, Admitted)]


# -- property: without a moderator action nobody gets in -----------------------------------------

names = st.sampled_from([f"p{i}" for i in range(50)])
non_moderator_events = st.lists(
    st.one_of(
        names.map(join),
        names.map(Leave),
        st.builds(Admit, names, names),
        st.builds(Reject, names, names),
        st.builds(SetLock, names, st.booleans()),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(events=non_moderator_events, escalation=st.booleans())
def test_no_sequence_of_non_moderator_events_admits_anyone(
    events: list[Event], escalation: bool
) -> None:
    lobby = Lobby("sa-1", locked=not escalation, escalation=escalation)
    lobby.handle(join("mod", moderator=True))
    everything = []
    for event in events:
        with contextlib.suppress(Forbidden, NotFound, Conflict):
            everything += lobby.handle(event)
    assert set(lobby.participants) == {"mod"}
    assert all(a.participant_id == "mod" for a in everything if isinstance(a, Admitted))
    receivers_of_roster = {
        a.to for a in everything if isinstance(a, Send) and a.message.TYPE == MessageType.ROSTER
    }
    assert receivers_of_roster <= {"mod"}


@settings(max_examples=60, deadline=None)
@given(order=st.permutations([f"p{i}" for i in range(50)]), admitted=st.sets(st.integers(0, 49)))
def test_exactly_the_admitted_get_in(order: list[str], admitted: set[int]) -> None:
    lobby = Lobby("sa-1", locked=True)
    lobby.handle(join("mod", moderator=True))
    for name in order:
        lobby.handle(join(name))
    chosen = {f"p{i}" for i in admitted}
    rostered: set[str] = set()
    for name in sorted(chosen):
        for action in lobby.handle(Admit("mod", name)):
            if isinstance(action, Send) and action.message.TYPE == MessageType.ROSTER:
                rostered.add(action.to)
    assert set(lobby.participants) == chosen | {"mod"}
    assert set(lobby.waiting) == set(order) - chosen
    assert rostered <= chosen | {"mod"}
