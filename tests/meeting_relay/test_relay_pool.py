"""The region's relay pool against a real relay: discovery by heartbeat, keys, re-keys on departure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.meeting.media.pool import RelayPool, relay_failure
from services.meeting.relay.client import RelayControlError


def test_the_pool_finds_the_relay_hands_out_keys_and_rekeys_the_others(relay: Any) -> None:
    told: list[tuple[str, dict[str, Any]]] = []

    async def notify(participant_id: str, message: dict[str, Any]) -> None:
        told.append((participant_id, message))

    async def scenario() -> None:
        pool = RelayPool(relay.home, relay.region, replace=False, scan_interval=0.1)
        assert await pool.issue("pool-c", "pool-a") is None  # no relay known yet: no keys
        supervisor = asyncio.create_task(pool.run(notify))
        try:
            for _ in range(200):
                if pool.live_relays():
                    break
                await asyncio.sleep(0.05)
            assert pool.live_relays() == ["relay-t"]
            grants = {
                pid: await pool.issue("pool-c", pid) for pid in ("pool-a", "pool-b", "pool-d")
            }
            for pid, grant in grants.items():
                assert grant is not None and grant["relay"] == "relay-t"
                assert grant["participant_id"] == pid and grant["send_key"] != grant["receive_key"]
            await pool.refresh("pool-c", "relay-t")  # its grant is for the conference's relay
            assert told == []
            await pool.refresh("pool-c", "relay-gone")  # resumed with a grant it was moved off
            assert sorted(pid for pid, _ in told) == ["pool-a", "pool-b", "pool-d"]
            assert {m["relay"] for _, m in told} == {"relay-t"}
            assert all(m["type"] == "media.keys" and m["rekey"] for _, m in told)
            fresh = {pid: m for pid, m in told}
            told.clear()
            await pool.withdraw("pool-c", "pool-a")
            assert sorted(pid for pid, _ in told) == ["pool-b", "pool-d"]
            for pid, message in told:
                assert message["type"] == "media.keys" and message["rekey"] is True
                assert message["send_key"] != grants[pid]["send_key"]  # type: ignore[index]
                assert message["send_key"] != fresh[pid]["send_key"]
            told.clear()
            await pool.withdraw("pool-c", "pool-b", rekey=False)  # the conference is ending
            await pool.withdraw("pool-c", "pool-a")  # already gone: nothing happens
            assert told == []
            await pool.withdraw("pool-c", "pool-d", rekey=False)
            assert pool.directory.host("pool-c") is None and pool.failovers == 0
        finally:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)

    asyncio.run(scenario())
    assert relay.alive()


def test_only_a_broken_relay_counts_as_a_failure() -> None:
    assert relay_failure(httpx.ConnectError("refused"))
    assert relay_failure(RelayControlError(503, None, "down"))
    assert relay_failure(ConnectionResetError())
    assert not relay_failure(RelayControlError(409, "participant_id", "already here"))
    assert not relay_failure(ValueError("not a relay problem"))
