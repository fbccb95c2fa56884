"""Kill the replica that owns a live conference, mid-call, and measure what the participants felt.

Used by the live test (a few rounds) and `python -m bench signaling_failover` (20 rounds). The
participants join through the balancer with resumable calls (`MediaCall(reconnect=...)`) and send
20 ms audio frames the whole time. Each round SIGKILLs the owner replica, starts a replacement on
the same port (the balancer's server entry), and records per round (`stall_round` instead stops
the owner past its lease and lets it go on, as CPU starvation does):

- `media_gap_s`: per receiver, the longest time without a frame from a sender across the kill;
- `resume_s`: per dropped participant, from its socket's drop to `resumed` on a new socket;
- `signaling_s`: per participant, from the kill until the conference answers an in-conference
  message of it again (a `media` change it sends, broadcast back as `media.state` by the owner);
- `roster_same`: the latest roster of every participant equals the one before the kill;
- `open_legs`: the conference's open CDR legs per account (one each, the same rows as before);
- `left`: whether anybody left (a `conference.ended`, `removed` or an unrecovered socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from media_core.sources import AudioSource
from protocol.meeting_client import MeetingApi, Signal
from protocol.signaling import MessageType as T
from roomtrust.harness.call import MediaCall
from roomtrust.harness.meeting_replicas import Proc, ReplicatedMeeting

SETTLE = 1.5  # seconds of call after each round's recovery, before the next kill
# after a stalled owner goes on: past the resume grace (10 s), so a participant the new owner
# waits for in vain would have left by then
STALL_SETTLE = 11.0


@dataclass
class Round:
    media_gap_s: list[float] = field(default_factory=list)
    resume_s: list[float] = field(default_factory=list)
    signaling_s: list[float] = field(default_factory=list)
    roster_same: bool = False
    legs_same: bool = False
    open_legs: dict[str, int] = field(default_factory=dict)
    left: bool = False


def owner_replica(region: ReplicatedMeeting, conference_id: str) -> Proc:
    replica_id = region.owner(conference_id)
    assert replica_id is not None, "the conference has no owner"
    pid = int(replica_id.split("-")[-2])
    return next(r for r in region.replicas if r.process.pid == pid and r.alive())


def open_legs(region: ReplicatedMeeting, conference_id: str) -> dict[str, list[int]]:
    with region.engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.account_id, l.id FROM call_legs l JOIN call_records c"
                " ON c.id = l.call_id WHERE c.conference_id = :c AND l.left_at IS NULL"
                " ORDER BY l.id"
            ),
            {"c": conference_id},
        )
        legs: dict[str, list[int]] = {}
        for account_id, leg_id in rows:
            legs.setdefault(str(account_id), []).append(int(leg_id))
        return legs


def latest_roster(call: MediaCall) -> frozenset[str]:
    rosters = [m for m in call.signal.received if m.get("type") == T.ROSTER]
    assert rosters, "no roster yet"
    return frozenset(p["participant_id"] for p in rosters[-1]["participants"])


async def join_all(
    region: ReplicatedMeeting, apis: list[MeetingApi], conference_id: str
) -> list[MediaCall]:
    calls = []
    for index, api in enumerate(apis):
        signal = Signal(region.url, region.ca_file, api.token, resumable=True)
        await signal.__aenter__()
        call = await MediaCall(signal).open()
        await call.join(conference_id)
        await call.expect(T.ADMITTED)
        await call.keys()
        call.start_audio(AudioSource(ssrc=0x1000 + index))
        calls.append(call)
    deadline = time.monotonic() + 10
    while len({latest_roster(c) for c in calls}) != 1 or len(latest_roster(calls[0])) != len(apis):
        assert time.monotonic() < deadline, "the rosters did not settle"
        await asyncio.sleep(0.05)
    return calls


def gaps(calls: list[MediaCall], killed_at: float, until: float) -> list[float]:
    """Per receiver: the longest silence from any sender across the kill."""
    out = []
    for receiver in calls:
        worst = 0.0
        for sender in calls:
            if sender is receiver or sender.source is None:
                continue
            times = [a.at for a in receiver.from_source(sender.source.ssrc) if a.at <= until]
            before = [t for t in times if t <= killed_at]
            after = [t for t in times if t > killed_at]
            if not before or not after:
                worst = float("inf")
                continue
            worst = max(worst, after[0] - before[-1])
        out.append(worst)
    return out


async def probe(call: MediaCall, killed_at: float, patience: float = 20.0) -> float:
    """Seconds from the kill until the owner answers this participant's message again."""
    loop = asyncio.get_running_loop()
    start = len(call.signal.received)
    while loop.time() - killed_at < patience:
        with contextlib.suppress(Exception):
            await call.send({"type": T.MEDIA, "audio": True})
        attempt = loop.time()
        while loop.time() - attempt < 0.5:
            if any(
                m.get("type") == T.MEDIA_STATE and m.get("participant_id") == call.participant_id
                for m in call.signal.received[start:]
            ):
                return loop.time() - killed_at
            await asyncio.sleep(0.01)
    return float("inf")


async def kill_round(
    region: ReplicatedMeeting, calls: list[MediaCall], conference_id: str
) -> Round:
    result = Round()
    roster_before = latest_roster(calls[0])
    legs_before = open_legs(region, conference_id)
    resumed_before = [len(c.signal.resumes) for c in calls]
    victim = owner_replica(region, conference_id)
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(region.kill, victim)
    killed_at = loop.time()
    probes = [asyncio.create_task(probe(c, killed_at)) for c in calls]
    region.replicas.remove(victim)
    replacement = asyncio.create_task(asyncio.to_thread(region.start_replica, victim.port))
    deadline = loop.time() + 20
    while True:  # until the dropped calls resumed and the owner is a live replica again
        dropped = [
            c for c, n in zip(calls, resumed_before, strict=True) if len(c.signal.resumes) == n
        ]
        dropped = [c for c in dropped if c.signal.close_code is not None]
        owner = region.owner(conference_id)
        if not dropped and owner is not None and str(victim.process.pid) not in owner.split("-"):
            break
        if loop.time() > deadline:
            result.left = True
            break
        await asyncio.sleep(0.05)
    await replacement
    result.signaling_s = list(await asyncio.gather(*probes))
    await asyncio.sleep(SETTLE)
    result.media_gap_s = gaps(calls, killed_at, loop.time())
    for call, count in zip(calls, resumed_before, strict=True):
        result.resume_s += [up - down for down, up in call.signal.resumes[count:]]
    result.left = result.left or any(c.signal.over for c in calls)
    result.roster_same = all(latest_roster(c) == roster_before for c in calls)
    legs_after = open_legs(region, conference_id)
    result.open_legs = {a: len(ids) for a, ids in legs_after.items()}
    result.legs_same = legs_after == legs_before
    return result


async def stall_round(
    region: ReplicatedMeeting, calls: list[MediaCall], conference_id: str, stall_s: float
) -> tuple[Round, bool]:
    """Stop the owner replica (SIGSTOP, as a replica starved of CPU) past its lease, so the other
    replica takes the conference over, then let it go on (SIGCONT) and wait past the resume
    grace: the round, and whether the owner changed (the stall did cause a take-over)."""
    result = Round()
    roster_before = latest_roster(calls[0])
    legs_before = open_legs(region, conference_id)
    victim = owner_replica(region, conference_id)
    before = region.owner(conference_id)
    loop = asyncio.get_running_loop()
    victim.process.send_signal(signal.SIGSTOP)
    stalled_at = loop.time()
    try:
        await asyncio.sleep(stall_s)
    finally:
        victim.process.send_signal(signal.SIGCONT)
    result.signaling_s = list(await asyncio.gather(*(probe(c, stalled_at) for c in calls)))
    await asyncio.sleep(STALL_SETTLE)
    result.media_gap_s = gaps(calls, stalled_at, loop.time())
    result.left = any(c.signal.over for c in calls)
    result.roster_same = all(latest_roster(c) == roster_before for c in calls)
    legs_after = open_legs(region, conference_id)
    result.open_legs = {a: len(ids) for a, ids in legs_after.items()}
    result.legs_same = legs_after == legs_before
    return result, region.owner(conference_id) != before


async def run_rounds(
    region: ReplicatedMeeting, apis: list[MeetingApi], conference_id: str, rounds: int
) -> list[Round]:
    calls = await join_all(region, apis, conference_id)
    results = []
    try:
        await asyncio.sleep(1.0)
        for _ in range(rounds):
            results.append(await kill_round(region, calls, conference_id))
    finally:
        for call in calls:
            await call.close()
            await call.signal.__aexit__(None, None, None)
    return results


def setup_conference(region: ReplicatedMeeting, parties: int) -> tuple[list[MeetingApi], str]:
    admin = MeetingApi(region.replicas[0].url, region.ca_file)
    admin.register_enterprise("Failover Inc")
    apis = [admin.member(f"Party {i}") for i in range(parties)]
    conference_id = apis[0].create_conference("Failover")["conference_id"]
    return apis, conference_id


def summary(rounds: list[Round]) -> dict[str, Any]:
    return {
        "rounds": len(rounds),
        "left": sum(r.left for r in rounds),
        "roster_changed": sum(not r.roster_same for r in rounds),
        "legs_changed": sum(not r.legs_same for r in rounds),
        "media_gaps": [g for r in rounds for g in r.media_gap_s],
        "resumes": [s for r in rounds for s in r.resume_s],
        "signaling": [s for r in rounds for s in r.signaling_s],
    }
