"""A replicated meeting region as real processes (docs/meeting-replicas.md): two signaling replicas
on one PostgreSQL database behind HAProxy, their own nats-server, two relays registered in the
database (`roomtrust.harness.meeting_replicas`).

- Owner and guest on different replicas: the guest of a locked conference knocks, the owner (whose
  replica owns the conference) sees it and admits; both rosters agree, chat crosses both ways, both
  get keys for the same relay, and each hears the other's marker tone (440 Hz / 660 Hz).
- After that conference ends, its chat marker is in no table, log, state directory, nor in the NATS
  server's store or log.
- A relay killed with SIGKILL is declared lost once and replaced once; its conference moves once
  (one placement row that both replicas read), each participant gets fresh keys for the new relay
  by a `media.move` through its own replica, and media flows again.
- The owner replica killed with SIGKILL mid-call: the other replica takes the conference over from
  its snapshot; the participants whose sockets it holds stay in, and the ones that were on the dead
  replica resume their place through the balancer with their resume token (same participant,
  same CDR leg).
- The owner replica stalled past its lease (SIGSTOP, as CPU starvation does) and then going on:
  the other replica takes over, the stalled one steps down instead of acting on a conference it
  lost, and nobody leaves, the roster and the CDR legs stay, media and signaling come back.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from media_core import g711
from media_core.sources import AudioSource
from protocol.meeting_client import MeetingApi, Signal
from protocol.signaling import MessageType as T
from roomtrust.container_host import postgres_missing
from roomtrust.harness.call import MediaCall
from roomtrust.harness.meeting_replicas import (
    REGION,
    ReplicatedMeeting,
    nats_missing,
    replicated_meeting,
)
from roomtrust.harness.owner_failover import (
    Round,
    join_all,
    owner_replica,
    run_rounds,
    setup_conference,
    stall_round,
    summary,
)
from roomtrust.stack.balancer import haproxy_missing, server_states
from services.common.db import is_postgres
from services.meeting import audit

pytestmark = [
    pytest.mark.database,
    pytest.mark.postgres,
    pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing())),
    pytest.mark.skipif(bool(haproxy_missing()), reason=str(haproxy_missing())),
    pytest.mark.skipif(bool(nats_missing()), reason=str(nats_missing())),
    # the region makes its own database: once, in CI's PostgreSQL pass, is enough
    pytest.mark.skipif(
        not is_postgres(os.environ.get("ROOMTRUST_DATABASE_URL", "")),
        reason="runs in the PostgreSQL pass (ROOMTRUST_DATABASE_URL on PostgreSQL)",
    ),
]

OWNER_HZ, GUEST_HZ = 440, 660
MIN_LEVEL = 1000  # a 6000-amplitude tone decodes to ~6000; another tone's leak stays under ~100


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedMeeting]:
    with replicated_meeting(tmp_path_factory.mktemp("replicated")) as started:
        yield started


@pytest.fixture(scope="module")
def admin(region: ReplicatedMeeting) -> Iterator[MeetingApi]:
    with MeetingApi(region.replicas[0].url, region.ca_file) as api:
        api.register_enterprise("Replicas Inc")
        yield api


def signal_through_balancer(region: ReplicatedMeeting, api: MeetingApi) -> Signal:
    return Signal(region.url, region.ca_file, api.token)


def level(call: MediaCall, ssrc: int, hz: float) -> float:
    frames = call.from_source(ssrc)[5:]
    samples = [s for a in frames for s in g711.decode(a.packet.payload)]
    return g711.tone_level(samples, hz)


def connections(region: ReplicatedMeeting) -> dict[str, int]:
    assert region.balancer is not None
    states = server_states(region.balancer.stats_socket)
    return {name: int(state["scur"] or 0) for name, state in states.items()}


def states(region: ReplicatedMeeting, api: MeetingApi, conference_id: str) -> list[str]:
    """The conference's state as each replica's REST API reports it."""
    found = []
    for replica in region.replicas:
        with MeetingApi(replica.url, region.ca_file, api.token) as there:
            found.append(str(there.call("GET", f"/v1/conferences/{conference_id}")["state"]))
    return found


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def open_call(region: ReplicatedMeeting, api: MeetingApi) -> MediaCall:
    sig = signal_through_balancer(region, api)
    await sig.__aenter__()
    return await MediaCall(sig).open()


async def close_calls(*calls: MediaCall) -> None:
    for call in calls:
        await call.close()
        await call.signal.__aexit__(None, None, None)


def test_owner_and_guest_on_two_replicas_knock_admit_chat_and_hear_each_other(
    region: ReplicatedMeeting, admin: MeetingApi
) -> None:
    owner, guest = admin.member("Olga Owner"), admin.member("Gus Guest")
    cid = owner.create_conference("Across replicas", locked=True)["conference_id"]
    marker = f"chat-marker-{secrets.token_hex(6)}"

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        o = await open_call(region, owner)
        await wait_for(lambda: sum(connections(region).values()) == 1, 5, "owner's connection")
        g = await open_call(region, guest)
        await wait_for(lambda: sum(connections(region).values()) == 2, 5, "guest's connection")
        seen["connections"] = connections(region)
        try:
            await o.join(cid)
            await o.expect(T.ADMITTED)
            await g.join(cid)
            await g.expect(T.LOBBY_WAITING)
            knock = await o.expect(T.LOBBY_KNOCK)
            seen["knock"] = knock["participant"]["display_name"]
            await o.send(
                {"type": T.ADMIT, "participant_id": knock["participant"]["participant_id"]}
            )
            await g.expect(T.ADMITTED)
            await o.keys()
            await g.keys()
            rosters = []
            for call in (o, g):
                while True:  # the latest roster each one has
                    roster = await call.expect(T.ROSTER)
                    names = {p["display_name"] for p in roster["participants"]}
                    if len(names) == 2:
                        break
                rosters.append(names)
            seen["rosters"] = rosters
            await g.send({"type": T.CHAT, "text": f"from the guest {marker}"})
            seen["owner_chat"] = (await o.expect(T.CHAT))["text"]
            await o.send({"type": T.CHAT, "text": f"from the owner {marker}"})
            got = (await g.expect(T.CHAT))["text"]
            while "from the owner" not in got:
                got = (await g.expect(T.CHAT))["text"]
            seen["guest_chat"] = got
            assert o.endpoint.grant is not None and g.endpoint.grant is not None
            seen["relays"] = (o.endpoint.grant.relay, g.endpoint.grant.relay)
            o.start_audio(AudioSource(ssrc=0x1000, tone_hz=OWNER_HZ))
            g.start_audio(AudioSource(ssrc=0x2000, tone_hz=GUEST_HZ))
            await asyncio.sleep(2.0)
            seen["owner_hears"] = {hz: level(o, 0x2000, hz) for hz in (OWNER_HZ, GUEST_HZ)}
            seen["guest_hears"] = {hz: level(g, 0x1000, hz) for hz in (OWNER_HZ, GUEST_HZ)}
            seen["owner_replica"] = region.owner(cid)
            await asyncio.sleep(0.5)  # a lease loop's read of the live conferences
            seen["states"] = await asyncio.to_thread(states, region, owner, cid)
            await o.send({"type": T.END})
            await g.expect(T.CONFERENCE_ENDED)
            await asyncio.sleep(0.5)
            seen["states_after"] = await asyncio.to_thread(states, region, owner, cid)
        finally:
            await close_calls(o, g)
        return seen

    seen = asyncio.run(scenario())
    assert sorted(seen["connections"].values()) == [1, 1], seen["connections"]  # one on each
    assert seen["knock"] == "Gus Guest"
    assert seen["rosters"][0] == seen["rosters"][1] == {"Olga Owner", "Gus Guest"}
    assert marker in seen["owner_chat"] and marker in seen["guest_chat"]
    assert seen["relays"][0] == seen["relays"][1]
    assert seen["owner_hears"][GUEST_HZ] > MIN_LEVEL > seen["owner_hears"][OWNER_HZ], seen
    assert seen["guest_hears"][OWNER_HZ] > MIN_LEVEL > seen["guest_hears"][GUEST_HZ], seen
    assert seen["owner_replica"] is not None
    assert seen["states"] == ["active", "active"], seen["states"]  # whichever replica answers
    assert seen["states_after"] == ["idle", "idle"], seen["states_after"]

    # MT-18: the chat marker is nowhere once the conference has ended
    time.sleep(0.5)
    traces = {
        proc.name: audit.trace_of(proc.home, REGION, marker, database_url=region.database_url)
        for proc in [*region.replicas, *region.relays]
    }
    nats_files = audit.files_containing(region.nats.store, marker)
    nats_files += audit.files_containing(region.nats.log.parent, marker)
    assert all(not any(t.values()) for t in traces.values()), traces
    assert nats_files == []
    assert region.owner(cid) is None  # the ended conference has no owner row left
    # the negative control: the same search finds a marker that was written down
    written = f"written-marker-{secrets.token_hex(6)}"
    owner.create_conference(f"Title {written}")
    hit = audit.trace_of(region.home, REGION, written, database_url=region.database_url)
    assert hit["database"] == ["conferences"]


def test_a_killed_relay_is_replaced_once_and_its_conference_moves_once(
    region: ReplicatedMeeting, admin: MeetingApi
) -> None:
    owner, guest = admin.member("Rita Relay"), admin.member("Gil Guest")
    cid = owner.create_conference("Relay loss")["conference_id"]

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        o = await open_call(region, owner)
        await wait_for(lambda: sum(connections(region).values()) == 1, 5, "owner's connection")
        g = await open_call(region, guest)
        await wait_for(lambda: sum(connections(region).values()) == 2, 5, "guest's connection")
        try:
            await o.join(cid)
            await o.expect(T.ADMITTED)
            await g.join(cid)
            await g.expect(T.ADMITTED)
            await o.keys()
            await g.keys()
            placed = region.placement(cid)
            assert placed is not None and placed[1] == 0
            seen["before"] = placed
            rows_before = region.relay_rows()
            o.start_audio(AudioSource(ssrc=0x1000, tone_hz=OWNER_HZ))
            g.start_audio(AudioSource(ssrc=0x2000, tone_hz=GUEST_HZ))
            await asyncio.sleep(0.5)
            victim = next(r for r in region.relays if r.name == placed[0])
            region.kill(victim)
            killed = time.monotonic()
            await o.expect(T.MEDIA_MOVE, timeout=10)
            await g.expect(T.MEDIA_MOVE, timeout=10)
            seen["move_s"] = time.monotonic() - killed
            await asyncio.sleep(1.5)
            after = time.monotonic() - killed
            o_heard = [a for a in o.from_source(0x2000) if a.at > o.loop.time() - after + 1.0]
            seen["owner_frames_after"] = len(o_heard)
            seen["guest_frames_after"] = len(
                [a for a in g.from_source(0x1000) if a.at > g.loop.time() - after + 1.0]
            )
            seen["moves"] = [m for m in o.types() + g.types() if m == T.MEDIA_MOVE]
            assert o.endpoint.grant is not None and g.endpoint.grant is not None
            seen["relays_after"] = (o.endpoint.grant.relay, g.endpoint.grant.relay)
            seen["after"] = region.placement(cid)
            # wait for the one replacement to register
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = region.relay_rows()
                if len(rows) == len(rows_before) + 1:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # long enough for a second replacement to show, if any
            seen["rows"] = region.relay_rows()
            seen["rows_before"] = rows_before
            # the REST API's end, through the replica that does not own the conference
            other = next(r for r in region.replicas if r is not owner_replica(region, cid))
            with MeetingApi(other.url, region.ca_file, owner.token) as elsewhere:
                seen["ended"] = await asyncio.to_thread(elsewhere.end, cid)
            await o.expect(T.CONFERENCE_ENDED)
            await g.expect(T.CONFERENCE_ENDED)
        finally:
            await close_calls(o, g)
        return seen

    seen = asyncio.run(scenario())
    before, after = seen["before"], seen["after"]
    assert after is not None and after[0] != before[0] and after[1] == 1, (before, after)
    assert len(seen["moves"]) == 2, seen["moves"]  # one move each
    assert seen["relays_after"][0] == seen["relays_after"][1]
    assert seen["owner_frames_after"] > 10 and seen["guest_frames_after"] > 10, seen
    lost = [r for r in seen["rows"] if r["lost"]]
    assert [r["name"] for r in lost] == [before[0]], seen["rows"]
    assert len(seen["rows"]) == len(seen["rows_before"]) + 1, seen["rows"]  # replaced once
    assert seen["ended"]["was_live"] is True, seen["ended"]  # the owner ended it


def test_the_owner_replica_killed_mid_call_twice_nobody_leaves_and_the_record_holds(
    region: ReplicatedMeeting,
) -> None:
    apis, cid = setup_conference(region, parties=3)
    rounds = asyncio.run(run_rounds(region, apis, cid, rounds=2))
    result = summary(rounds)
    assert result["left"] == 0, rounds
    assert result["roster_changed"] == 0, rounds
    assert result["legs_changed"] == 0, rounds
    assert all(r.open_legs and set(r.open_legs.values()) == {1} for r in rounds), rounds
    assert len(result["resumes"]) >= 2, rounds  # at least the owner replica's sockets resumed
    assert max(result["resumes"]) < 5.0, result["resumes"]  # the "within seconds"
    assert all(gap < 5.0 for gap in result["media_gaps"]), result["media_gaps"]


def test_an_owner_stalled_past_its_lease_steps_down_and_nobody_leaves(
    region: ReplicatedMeeting,
) -> None:
    apis, cid = setup_conference(region, parties=3)

    async def scenario() -> tuple[Round, bool]:
        calls = await join_all(region, apis, cid)
        try:
            await asyncio.sleep(1.0)
            return await stall_round(region, calls, cid, stall_s=2.0)
        finally:
            for call in calls:
                await call.close()
                await call.signal.__aexit__(None, None, None)

    stalled, moved = asyncio.run(scenario())
    assert moved, "the stall did not make the other replica take the conference over"
    assert not stalled.left, stalled
    assert stalled.roster_same, stalled
    assert stalled.legs_same and set(stalled.open_legs.values()) == {1}, stalled
    assert all(gap < 5.0 for gap in stalled.media_gap_s), stalled.media_gap_s
    assert all(s < 5.0 for s in stalled.signaling_s), stalled.signaling_s
