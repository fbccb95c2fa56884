"""Signaling failover of a replicated meeting region: the owner replica SIGKILLed 20 times mid-call.

Two signaling replicas behind HAProxy on a fresh PostgreSQL database, their own nats-server, two
relays (`roomtrust.harness.meeting_replicas`). Four participants join one conference through the
balancer with resumable calls and send 20 ms audio frames the whole time. Each round kills the
replica that owns the conference and starts a replacement on its port
(`roomtrust.harness.owner_failover`). Goals (the issue's): nobody leaves, the roster is the same
before and after, one open CDR leg per participant throughout (the same rows), the media gap at
each receiver p99 < 200 ms, signaling back within 2 s p99 (the participants whose socket dropped:
drop to `resumed`; every participant: kill to its next in-conference message answered).

The baseline measured in the same run: the longest gap between two frames at a receiver over a
quiet stretch of the call without a kill, so a gap of the failover reads as a ratio against it.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

from roomtrust.harness.meeting_replicas import ReplicatedMeeting, replicated_meeting
from roomtrust.harness.owner_failover import (
    gaps,
    join_all,
    kill_round,
    setup_conference,
    summary,
)

KILLS = 20
PARTIES = 4
QUIET = 5.0  # seconds of call without a kill: the baseline


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def measure(region: ReplicatedMeeting) -> tuple[list[float], dict[str, Any]]:
    apis, conference_id = setup_conference(region, PARTIES)
    calls = await join_all(region, apis, conference_id)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.0)
        middle = loop.time() + QUIET / 2
        await asyncio.sleep(QUIET)
        baseline = gaps(calls, middle, loop.time())  # the same measure, across no kill
        rounds = [await kill_round(region, calls, conference_id) for _ in range(KILLS)]
    finally:
        for call in calls:
            await call.close()
            await call.signal.__aexit__(None, None, None)
    return baseline, summary(rounds)


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="roomtrust-signaling-failover-") as tmp,
        replicated_meeting(Path(tmp)) as region,
    ):
        baseline, result = asyncio.run(measure(region))
    media = [g * 1000 for g in result["media_gaps"]]
    resumes = [s * 1000 for s in result["resumes"]]
    signaling = [s * 1000 for s in result["signaling"]]
    quiet = max(baseline) * 1000
    print(
        f"signaling failover, {PARTIES} parties on 2 replicas, {result['rounds']} owner SIGKILLs: "
        f"left {result['left']}, roster changed {result['roster_changed']}, "
        f"CDR legs changed {result['legs_changed']}"
    )
    print(
        f"media gap per receiver p50 {percentile(media, 50):.0f} ms, "
        f"p99 {percentile(media, 99):.0f} ms, max {max(media):.0f} ms (goal p99 < 200 ms); "
        f"without a kill {quiet:.0f} ms (p99 ratio {percentile(media, 99) / quiet:.1f})"
    )
    print(
        f"dropped sockets resumed ({len(resumes)}): p50 {percentile(resumes, 50):.0f} ms, "
        f"p99 {percentile(resumes, 99):.0f} ms (goal p99 < 2000 ms); "
        f"kill to next answered message ({len(signaling)}): p50 {percentile(signaling, 50):.0f} "
        f"ms, p99 {percentile(signaling, 99):.0f} ms"
    )


if __name__ == "__main__":
    main()
