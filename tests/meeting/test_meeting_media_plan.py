"""Which relay carries which conference, and the moves when a relay is lost (sans-IO, MT-03)."""

from __future__ import annotations

from services.meeting.domain.media import Move, RelayDirectory


def directory_with(*relays: str) -> RelayDirectory:
    directory = RelayDirectory()
    for name in relays:
        assert directory.relay_up(name) == []
    return directory


def test_conferences_go_to_the_least_loaded_live_relay_and_stay_there() -> None:
    d = directory_with("r1", "r2")
    assert d.place("c1") == "r1" and d.place("c2") == "r2" and d.place("c3") == "r1"
    assert d.place("c2") == "r2"  # a conference keeps its relay
    assert (d.load("r1"), d.load("r2")) == (2, 1)
    assert RelayDirectory().place("c1") is None  # no relay, no placement


def test_a_lost_relay_moves_its_conferences_with_their_participants() -> None:
    d = directory_with("r1", "r2", "r3")
    for conference, people in (("c1", ["a", "b"]), ("c2", ["c"]), ("c3", ["d"])):
        d.place(conference)
        for person in people:
            d.joined(conference, person)
    d.place("c4")
    d.joined("c4", "e")  # r1: c1, c4; r2: c2; r3: c3
    moves = d.relay_down("r1")
    assert moves == [Move("c1", "r1", "r2", ("a", "b")), Move("c4", "r1", "r3", ("e",))]
    assert d.host("c1") == "r2" and d.host("c4") == "r3"
    assert d.relay_down("r1") == []  # lost once
    assert d.relay_up("r1") == [] and "r1" not in d.live  # and never used again
    assert d.host("c2") == "r2"  # other relays' conferences are untouched


def test_without_a_live_relay_conferences_wait_for_the_next_one() -> None:
    d = directory_with("r1")
    d.place("c1")
    d.joined("c1", "a")
    assert d.relay_down("r1") == [Move("c1", "r1", None, ("a",))]
    assert d.orphans() == ["c1"] and d.place("c2") is None
    assert d.relay_up("r9") == [Move("c1", "", "r9", ("a",))]
    assert d.host("c1") == "r9" and d.orphans() == []


def test_the_last_one_out_frees_the_relay() -> None:
    d = directory_with("r1", "r2")
    d.place("c1")
    d.joined("c1", "a")
    d.joined("c1", "b")
    assert d.left("c1", "a") == ["b"] and d.load("r1") == 1
    assert d.left("c1", "b") == [] and d.load("r1") == 0 and d.host("c1") is None
    d.place("c2")
    d.abandon("c2")  # chosen, but nobody joined after all
    assert d.host("c2") is None
