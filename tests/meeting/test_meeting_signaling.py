"""MT-09, MT-10, MT-16, MT-17, MT-18 over live WSS signaling against real region processes."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from protocol.meeting_client import PASSWORD, MeetingApi, Signal
from protocol.stack import Stack
from services.meeting import audit


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def joined(api: MeetingApi, conference_id: str, expect: str = "admitted") -> Signal:
    sig = await api.signaling().__aenter__()
    await sig.send({"type": "join", "conference_id": conference_id})
    await sig.expect(expect)
    return sig


def test_newcomer_waits_in_the_lobby_until_a_moderator_admits(admin_sa: MeetingApi) -> None:
    owner, bob = admin_sa.member("Owner One"), admin_sa.member("Bob Newcomer")
    conference = owner.create_conference("Locked room", locked=True)

    async def scenario() -> None:
        mod = await joined(owner, conference["conference_id"])
        newcomer = await joined(bob, conference["conference_id"], expect="lobby.waiting")
        knock = await mod.expect("lobby.knock")
        assert knock["participant"]["display_name"] == "Bob Newcomer"
        waiting_messages = await newcomer.drain()
        assert "roster" not in [m["type"] for m in waiting_messages]
        await mod.send({"type": "admit", "participant_id": knock["participant"]["participant_id"]})
        await newcomer.expect("admitted")
        roster = await newcomer.expect("roster")
        assert {p["display_name"] for p in roster["participants"]} == {"Owner One", "Bob Newcomer"}
        await newcomer.__aexit__()
        await mod.__aexit__()

    run(scenario())


def test_rejected_participant_never_receives_the_roster(admin_sa: MeetingApi) -> None:
    owner, eve = admin_sa.member("Owner Two"), admin_sa.member("Eve Rejected")
    conference = owner.create_conference("Escalation", escalation=True)

    async def scenario() -> None:
        mod = await joined(owner, conference["conference_id"])
        rejected = await joined(eve, conference["conference_id"], expect="lobby.waiting")
        knock = await mod.expect("lobby.knock")
        await mod.send({"type": "reject", "participant_id": knock["participant"]["participant_id"]})
        assert await rejected.closed() == 4403
        types = rejected.types()
        assert "rejected" in types
        assert not {"roster", "admitted", "media.keys", "chat", "notice"} & set(types)
        await mod.__aexit__()

    run(scenario())


def test_fifty_concurrent_joins_to_a_locked_conference_admit_nobody(admin_sa: MeetingApi) -> None:
    owner = admin_sa.member("Owner Three")
    crowd = [admin_sa.member(f"Crowd {i}") for i in range(2)]
    conference = owner.create_conference("Town hall", locked=True)
    cid = conference["conference_id"]

    async def scenario() -> None:
        mod = await joined(owner, cid)
        sockets = [await crowd[i % 2].signaling().__aenter__() for i in range(50)]
        await asyncio.gather(*(s.send({"type": "join", "conference_id": cid}) for s in sockets))
        # and they try again, and try to admit each other, all at once
        await asyncio.gather(*(s.send({"type": "join", "conference_id": cid}) for s in sockets))
        await asyncio.gather(
            *(s.send({"type": "admit", "participant_id": "p-anything"}) for s in sockets)
        )
        for s in sockets:
            await s.expect("lobby.waiting")
        await asyncio.gather(*(s.drain() for s in sockets))
        await mod.drain()
        await mod.send({"type": "lock", "locked": True})
        roster = await mod.expect("roster")
        assert [p["display_name"] for p in roster["participants"]] == ["Owner Three"]
        assert len(roster["lobby"]) == 50
        for s in sockets:
            assert not {"admitted", "roster"} & set(s.types())
        # one explicit admission admits exactly one
        await mod.send({"type": "admit", "participant_id": roster["lobby"][7]["participant_id"]})
        roster = await mod.expect("roster")
        assert len(roster["participants"]) == 2 and len(roster["lobby"]) == 49
        await asyncio.gather(*(s.__aexit__() for s in sockets))
        await mod.__aexit__()

    run(scenario())


def test_moderators_mute_and_remove_others_control_their_own_media(admin_sa: MeetingApi) -> None:
    owner, ann, ben = (admin_sa.member(n) for n in ("Owner Four", "Ann Muted", "Ben Removed"))
    cid = owner.create_conference("Moderated")["conference_id"]

    async def scenario() -> None:
        mod = await joined(owner, cid)
        a, b = await joined(ann, cid), await joined(ben, cid)
        await a.drain()
        await mod.drain()
        await a.send({"type": "mute", "target": "all"})
        assert (await a.expect("error"))["error"] == "Forbidden"
        await mod.send({"type": "mute", "target": "all"})
        assert (await a.expect("muted"))["by"] == "Owner Four"
        await b.expect("muted")
        roster = await mod.expect("roster")
        assert {p["display_name"]: p["audio"] for p in roster["participants"]} == {
            "Owner Four": True,
            "Ann Muted": False,
            "Ben Removed": False,
        }
        await mod.send({"type": "media", "video": False})
        state = await a.expect("media.state")
        assert state["video"] is False and state["audio"] is True
        ben_id = next(p for p in roster["participants"] if p["display_name"] == "Ben Removed")
        await mod.send({"type": "remove", "target": ben_id["participant_id"]})
        assert (await b.expect("removed"))["by"] == "Owner Four"
        assert await b.closed() == 4000
        await mod.send({"type": "remove", "target": "all"})
        assert await a.closed() == 4000
        await mod.__aexit__()

    run(scenario())


def test_one_off_conference_is_never_listed_and_gone_after_it_ends(admin_sa: MeetingApi) -> None:
    owner, guest = admin_sa.member("Owner Five"), admin_sa.member("Guest Five")
    one_off = owner.create_conference("Quick sync", kind="one_off")
    vmr = owner.create_conference("Team room")
    hidden = owner.create_conference("Hidden room", hidden=True)
    listed = {c["conference_id"] for c in guest.directory()}
    assert vmr["conference_id"] in listed
    assert not {one_off["conference_id"], hidden["conference_id"]} & listed
    cid = one_off["conference_id"]

    async def scenario() -> None:
        a, b = await joined(owner, cid), await joined(guest, cid)
        assert cid not in {c["conference_id"] for c in guest.directory()}
        assert owner.end(cid)["deleted"] is True
        assert await a.closed() == 1000 and await b.closed() == 1000
        assert "conference.ended" in b.types()
        late = await guest.signaling().__aenter__()
        await late.send({"type": "join", "conference_id": cid})
        error = await late.expect("error")
        assert error["error"] == "NotFound" and error["field"] == "conference_id"
        await late.__aexit__()

    run(scenario())
    assert guest.request("GET", f"/v1/conferences/{cid}").status_code == 404
    assert cid not in {c["conference_id"] for c in owner.call("GET", "/v1/conferences")}


def test_revoked_users_socket_is_closed_and_next_request_refused(admin_sa: MeetingApi) -> None:
    owner, rita = admin_sa.member("Owner Six"), admin_sa.member("Rita Revoked")
    cid = owner.create_conference("Revocation")["conference_id"]

    async def scenario() -> None:
        mod = await joined(owner, cid)
        sig = await joined(rita, cid)
        await asyncio.to_thread(admin_sa.call, "POST", f"/v1/accounts/{rita.account_id}/revoke")
        assert await sig.closed() == 4401
        roster = await mod.expect("roster")
        assert [p["display_name"] for p in roster["participants"]] == ["Owner Six"]
        await mod.__aexit__()

    run(scenario())
    response = rita.request("GET", "/v1/me")
    assert response.status_code == 401 and response.json()["reason"]  # its sessions are gone
    login = rita.request(
        "POST", "/v1/auth/login", json={"username": rita.username, "password": PASSWORD}
    )
    assert login.status_code == 401


def test_chat_leaves_no_trace_once_the_conference_ends(
    admin_sa: MeetingApi, meeting_stack: Stack
) -> None:
    owner, guest = admin_sa.member("Owner Seven"), admin_sa.member("Guest Seven")
    cid = owner.create_conference("Chatty", kind="one_off")["conference_id"]
    marker = f"MARKER-{secrets.token_hex(8)}"

    async def scenario() -> None:
        a, b = await joined(owner, cid), await joined(guest, cid)
        await a.send({"type": "record", "action": "start"})
        await b.expect("notice")
        await a.send({"type": "chat", "text": f"the secret is {marker}"})
        assert marker in (await b.expect("chat"))["text"]
        await b.send(
            {"type": "chat", "text": f"private {marker}", "to": (await a.expect("chat"))["from"]}
        )
        assert (await a.expect("chat"))["private"] is True
        await a.send({"type": "end"})
        assert await b.closed() == 1000

    run(scenario())
    home = meeting_stack.home
    for region in ("na", "sa", "eu", "asia"):
        trace = audit.trace_of(home, region, marker, meeting_stack.schema_prefix)
        assert trace == {"database": [], "logs": [], "storage": []}, trace
    assert list((home / "meeting" / "sa" / "recordings").glob("*.rec")), "nothing was searched"


def test_chat_and_recording_only_where_enabled(admin_sa: MeetingApi) -> None:
    owner = admin_sa.member("Owner Eight")
    cid = owner.create_conference("Policy")["conference_id"]
    admin_sa.settings(chat_enabled=False, recording_enabled=False, live_streaming_enabled=False)

    async def scenario() -> None:
        a = await joined(owner, cid)
        for message in (
            {"type": "chat", "text": "hello"},
            {"type": "record", "action": "start"},
            {"type": "stream", "action": "start"},
        ):
            await a.send(message)
            error = await a.expect("error")
            assert error["error"] == "Forbidden" and "administrator" in error["reason"]
        await a.__aexit__()

    run(scenario())
    admin_sa.settings(chat_enabled=True)

    async def allowed() -> None:
        a = await joined(owner, cid)
        await a.send({"type": "chat", "text": "hello again"})
        assert (await a.expect("chat"))["text"] == "hello again"
        await a.__aexit__()

    run(allowed())


def test_a_segment_without_recording_quota_left_cannot_start_a_recording(
    admin_sa: MeetingApi,
) -> None:
    owner, capped = admin_sa.member("Owner Ten"), admin_sa.member("Cora Capped")
    segment = admin_sa.call(
        "POST",
        "/v1/segments",
        json={"name": "No recording", "members": [capped.account_id], "recording_minutes": 0},
    )
    assert segment["members"] == [capped.account_id] and segment["recording_minutes"] == 0
    cid = owner.create_conference("Quota")["conference_id"]

    async def scenario() -> None:
        a, c = await joined(owner, cid), await joined(capped, cid)
        await c.send({"type": "record", "action": "start"})
        error = await c.expect("error")
        assert error["error"] == "Forbidden" and "quota of 0 minutes" in error["reason"]
        # the negative control: the owner is in no segment and records
        await a.send({"type": "record", "action": "start"})
        assert (await a.expect("notice"))["kind"] == "recording.started"
        await a.send({"type": "record", "action": "stop"})
        await a.expect("notice")
        for s in (a, c):
            await s.__aexit__()

    run(scenario())


def test_recording_in_sa_stays_in_sa_and_everyone_is_told_who_records(
    admin_sa: MeetingApi, meeting_stack: Stack
) -> None:
    home = meeting_stack.home
    before = audit.recording_files(home)
    owner, rec, late = (admin_sa.member(n) for n in ("Owner Nine", "Rosa Recorder", "Luis Late"))
    cid = owner.create_conference("Recorded", participant_locations=["brazil", "chile"])[
        "conference_id"
    ]
    assert cid.startswith("sa-")

    async def scenario() -> str:
        a, r = await joined(owner, cid), await joined(rec, cid)
        await r.send({"type": "record", "action": "start"})
        notices = [await s.expect("notice") for s in (a, r)]
        lt = await joined(late, cid)
        notices.append(await lt.expect("notice"))
        for notice in notices:
            assert notice["kind"] == "recording.started"
            assert notice["by"] == "Rosa Recorder" and "Rosa Recorder" in notice["text"]
        await r.send({"type": "record", "action": "stop"})
        stopped = await lt.expect("notice")
        assert stopped["kind"] == "recording.stopped"
        for s in (a, r, lt):
            await s.__aexit__()
        return str(notices[0]["recording_id"])

    recording_id = run(scenario())
    after = audit.recording_files(home)
    new = {
        region: sorted(set(files) - set(before.get(region, []))) for region, files in after.items()
    }
    assert new["sa"] == [f"{recording_id}.rec"]
    assert all(not files for region, files in new.items() if region != "sa")
    raw = (home / "meeting" / "sa" / "recordings" / f"{recording_id}.rec").read_bytes()
    assert cid.encode() not in raw  # encrypted at rest
    content = rec.request("GET", f"/v1/recordings/{recording_id}/content")
    assert content.status_code == 200 and cid.encode() in content.content
    # another organisation never sees it, and cannot be shared to
    endpoint = meeting_stack.endpoint("meeting", "sa")
    url, ca = endpoint.url, endpoint.ca_file
    with MeetingApi(url, ca) as stranger:
        stranger.register_enterprise("Other Corp")
        assert stranger.request("GET", f"/v1/recordings/{recording_id}").status_code == 404
        shared = rec.request(
            "POST", f"/v1/recordings/{recording_id}/share", json={"account_id": stranger.account_id}
        )
        assert shared.status_code == 403
    assert rec.call(
        "POST", f"/v1/recordings/{recording_id}/share", json={"account_id": owner.account_id}
    )


def test_conference_for_far_participants_is_refused_and_pointed_to_their_region(
    admin_sa: MeetingApi,
) -> None:
    owner = admin_sa.member("Owner Ten")
    response = owner.request(
        "POST",
        "/v1/conferences",
        json={"title": "Far", "participant_locations": ["japan", "china"]},
    )
    assert response.status_code == 409
    assert (
        response.json()["field"] == "participant_locations" and "asia" in response.json()["reason"]
    )
    elsewhere = owner.request("GET", "/v1/conferences/asia-0123456789abcdef")
    assert elsewhere.status_code == 409 and "asia" in elsewhere.json()["reason"]
