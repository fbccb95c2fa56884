"""Resume over live WSS signaling (docs/meeting-replicas.md), on the single-process region: a
resumable participant whose socket drops keeps its place and takes it back from a new socket with
its token; a wrong token or another account is refused; a participant that did not ask for a token
leaves when its socket drops (the behaviour of old clients, unchanged)."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.meeting_client import MeetingApi, Signal


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def join(api: MeetingApi, conference_id: str, resumable: bool) -> Signal:
    sig = await api.signaling().__aenter__()
    message: dict[str, Any] = {"type": "join", "conference_id": conference_id}
    if resumable:
        message["resumable"] = True
    await sig.send(message)
    await sig.expect("admitted")
    return sig


def roster_ids(message: dict[str, Any]) -> set[str]:
    return {p["participant_id"] for p in message["participants"]}


async def latest_roster(sig: Signal) -> set[str]:
    await sig.drain(0.5)
    rosters = [m for m in sig.received if m["type"] == "roster"]
    return roster_ids(rosters[-1])


def test_a_dropped_participant_resumes_its_place_from_a_new_socket(admin_sa: MeetingApi) -> None:
    owner, guest = admin_sa.member("Owner Resume"), admin_sa.member("Guest Resume")
    cid = owner.create_conference("Resume")["conference_id"]

    async def scenario() -> dict[str, Any]:
        o = await join(owner, cid, resumable=False)
        g = await join(guest, cid, resumable=True)
        token = await g.expect("resume.token")
        before = await latest_roster(o)
        await g.__aexit__()  # the socket drops
        await asyncio.sleep(1.0)
        during = await latest_roster(o)
        again = await guest.signaling().__aenter__()
        await again.send(
            {
                "type": "resume",
                "conference_id": cid,
                "participant_id": token["participant_id"],
                "token": token["token"],
            }
        )
        resumed = await again.expect("resumed")
        roster = await again.expect("roster")
        await o.send({"type": "chat", "text": "still there?"})
        chat = await again.expect("chat")
        await o.send({"type": "end"})
        await again.closed()
        await o.__aexit__()
        return {
            "before": before,
            "during": during,
            "resumed": resumed,
            "roster": roster_ids(roster),
            "pid": token["participant_id"],
            "chat": chat["text"],
        }

    seen = run(scenario())
    assert seen["pid"] in seen["before"]
    assert seen["during"] == seen["before"]  # the drop did not take its place
    assert seen["resumed"]["participant_id"] == seen["pid"] and seen["resumed"]["admitted"]
    assert seen["roster"] == seen["before"]
    assert seen["chat"] == "still there?"


def test_a_wrong_token_or_another_account_is_refused(admin_sa: MeetingApi) -> None:
    owner, guest = admin_sa.member("Owner Refuse"), admin_sa.member("Guest Refuse")
    cid = owner.create_conference("Refuse")["conference_id"]

    async def scenario() -> list[dict[str, Any]]:
        o = await join(owner, cid, resumable=False)
        g = await join(guest, cid, resumable=True)
        token = await g.expect("resume.token")
        await g.__aexit__()
        errors = []
        for api, secret in ((guest, "not-the-token"), (owner, token["token"])):
            sig = await api.signaling().__aenter__()
            await sig.send(
                {
                    "type": "resume",
                    "conference_id": cid,
                    "participant_id": token["participant_id"],
                    "token": secret,
                }
            )
            errors.append(await sig.expect("error"))
            await sig.__aexit__()
        await o.send({"type": "end"})
        await o.__aexit__()
        return errors

    wrong_token, other_account = run(scenario())
    assert wrong_token["error"] == "Forbidden" and wrong_token["field"] == "token", wrong_token
    assert other_account["field"] == "participant_id", other_account


def test_without_a_token_a_dropped_socket_leaves_at_once(admin_sa: MeetingApi) -> None:
    owner, guest = admin_sa.member("Owner Plain"), admin_sa.member("Guest Plain")
    cid = owner.create_conference("Plain")["conference_id"]

    async def scenario() -> tuple[set[str], set[str]]:
        o = await join(owner, cid, resumable=False)
        g = await join(guest, cid, resumable=False)
        before = await latest_roster(o)
        await g.__aexit__()
        after = await latest_roster(o)
        await o.send({"type": "end"})
        await o.__aexit__()
        return before, after

    before, after = run(scenario())
    assert len(before) == 2 and len(after) == 1
