"""The media gap when a relay is killed mid-call (MT-03): p50 and p99 over 20 SIGKILLs.

One meeting region (na) with two relays, on loopback, in a temporary home. Three participants join
one conference through WSS signaling and send 20 ms audio frames the whole time. Each round kills
the relay carrying the call with SIGKILL; the region's supervisor sees its heartbeat stream break,
moves everyone to the other relay with fresh keys ("media move") and starts a replacement relay.
The gap of a round is the longest time any participant went without a frame from another one across
the kill; the next round waits until the replacement relay is up. Goal: p99 under 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import tempfile
import time
from pathlib import Path

import httpx

from media_core.sources import AudioSource
from protocol.meeting_client import MeetingApi
from roomtrust.harness.call import MediaCall
from roomtrust.stack import launcher
from services.common.tls import client_context
from services.meeting.media.pool import REPLACE_DELAY_ENV
from services.meeting.relay.files import running_relays

REGION = "na"
KILLS = 20
PARTIES = 3
SETTLE = 1.0  # after the replacement answers: the supervisor finds it and opens its heartbeat


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def healthy_relays(home: Path) -> dict[str, int]:
    found = {}
    for ready in running_relays(home, REGION):
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.Client(verify=client_context(ready["ca_file"]), timeout=2) as client,
        ):
            if client.get(f"{ready['control_url']}/v1/health").status_code == 200:
                found[str(ready["name"])] = int(ready["pid"])
    return found


async def wait_for_two(home: Path, timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relays = await asyncio.to_thread(healthy_relays, home)
        if len(relays) >= 2:
            return relays
        await asyncio.sleep(0.1)
    raise RuntimeError("no second relay came up")


def round_gap(calls: list[MediaCall], killed_at: float) -> float:
    """The longest a participant went without a frame from another one across the kill."""
    worst = 0.0
    for receiver in calls:
        for sender in calls:
            if sender is receiver or sender.source is None:
                continue
            times = [a.at for a in receiver.from_source(sender.source.ssrc)]
            before = [t for t in times if t <= killed_at]
            after = [t for t in times if t > killed_at]
            if not before or not after:
                return math.inf
            worst = max(worst, after[0] - before[-1])
    return worst


async def rounds(home: Path, url: str, ca_file: Path) -> tuple[list[float], list[float]]:
    with MeetingApi(url, ca_file) as admin:
        admin.register_enterprise()
        people = [admin.member(f"Bench {i}") for i in range(PARTIES)]
        conference = people[0].create_conference("Failover bench")["conference_id"]
        calls = []
        for person in people:
            signal_ = person.signaling()
            await signal_.__aenter__()
            call = await MediaCall(signal_).open()
            await call.join(conference)
            await call.keys()
            calls.append(call)
        for index, call in enumerate(calls):
            call.start_audio(AudioSource(ssrc=7000 + index))
        gaps: list[float] = []
        moves: list[float] = []
        loop = asyncio.get_running_loop()
        try:
            for _ in range(KILLS):
                relays = await wait_for_two(home)
                await asyncio.sleep(SETTLE)
                grant = calls[0].endpoint.grant
                assert grant is not None
                pid = relays[grant.relay_name]
                moved_before = [c.endpoint.counters.moves for c in calls]
                killed_at = loop.time()
                os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                while any(
                    c.endpoint.counters.moves == m for c, m in zip(calls, moved_before, strict=True)
                ):
                    await asyncio.sleep(0.005)
                moves.append(max(t for c in calls for t, kind in c.key_events) - killed_at)
                await asyncio.sleep(1.0)
                gaps.append(round_gap(calls, killed_at))
        finally:
            for call in calls:
                await call.close()
                with contextlib.suppress(Exception):
                    await call.signal.__aexit__()
        return gaps, moves


def main() -> None:
    previous = os.environ.get(REPLACE_DELAY_ENV)
    os.environ[REPLACE_DELAY_ENV] = "0.2"
    with tempfile.TemporaryDirectory(prefix="roomtrust-failover-") as tmp:
        home = Path(tmp)
        region = None
        try:
            region = launcher.launch_region(home, "meeting", REGION)
            launcher.start_relays(home, {REGION: 2})
            gaps, moves = asyncio.run(rounds(home, region.url, region.ca_file))
        finally:
            if region is not None:
                launcher.terminate(region.pid)
            launcher.stop_relays(home)
            if previous is None:
                os.environ.pop(REPLACE_DELAY_ENV, None)
            else:
                os.environ[REPLACE_DELAY_ENV] = previous
    ms = [g * 1000 for g in gaps]
    print(
        f"relay failover, {PARTIES} parties, {len(gaps)} SIGKILLs: media gap "
        f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
        f"max {max(ms):.0f} ms (goal p99 < 1000 ms); "
        f"kill to last media move p50 {percentile([m * 1000 for m in moves], 50):.0f} ms"
    )
    print("gaps (ms): " + " ".join(f"{g:.0f}" for g in ms))


if __name__ == "__main__":
    main()
