"""The media-key hook of signaling: keys go to a participant only after admission, never to a
joiner who waits in the lobby or is rejected, and are withdrawn when the participant leaves; the
others get new keys pushed to them. The PSTN gateway's sign-in and its unencrypted leg (MT-08)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.common.runtime import RegionRuntime
from services.meeting.api.app import build_app
from services.meeting.api.media_keys import Notify
from services.meeting.domain.legs import PSTN_TRANSPORT
from services.meeting.relay.files import PSTN_TOKEN_FILE
from services.meeting.store.models import CallLeg


class RecordingKeys:
    """A hook that records its calls and, like the relay pool, re-keys the others on a departure."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.withdrawn: list[tuple[str, bool]] = []
        self.members: dict[str, list[str]] = {}
        self.notify: Notify | None = None

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        self.issued.append(participant_id)
        self.members.setdefault(conference_id, []).append(participant_id)
        return {"relay": "udp://127.0.0.1:40000", "srtp": {"key": f"key-for-{participant_id}"}}

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        self.withdrawn.append((participant_id, rekey))
        members = self.members.get(conference_id, [])
        if participant_id in members:
            members.remove(participant_id)
        if rekey and self.notify is not None:
            for pid in members:
                await self.notify(pid, {"type": "media.keys", "rekey": True, "srtp": "new"})

    async def run(self, notify: Notify) -> None:
        self.notify = notify
        await asyncio.Event().wait()


@pytest.fixture(scope="module")
def client_and_keys(inprocess_runtime: RegionRuntime) -> Any:
    keys = RecordingKeys()
    with TestClient(build_app(inprocess_runtime, media_keys=keys)) as client:
        yield client, keys


def login(client: TestClient, admin: dict[str, str] | None, name: str) -> dict[str, str]:
    password = "correct horse battery"
    if admin is None:
        username = f"{name}@keys.example.com"
        client.post(
            "/v1/enterprises",
            json={
                "name": "Keys",
                "admin": {
                    "username": username,
                    "password": password,
                    "first_name": "K",
                    "last_name": "Y",
                    "display_name": name,
                    "address": "x",
                    "company": "Keys",
                },
            },
        ).raise_for_status()
    else:
        username = f"{name}@keys.example.com"
        client.post(
            "/v1/accounts",
            headers=admin,
            json={"username": username, "display_name": name, "password": password},
        ).raise_for_status()
    token = client.post("/v1/auth/login", json={"username": username, "password": password})
    return {"Authorization": f"Bearer {token.json()['token']}"}


def until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = ws.receive_json()
        seen.append(message)
        if message["type"] == kind:
            return seen


def test_keys_only_after_admission(client_and_keys: Any) -> None:
    client, keys = client_and_keys
    admin = login(client, None, "keyadmin")
    owner, waiting, rejected = (login(client, admin, n) for n in ("owner", "waiter", "rejectee"))
    cid = client.post(
        "/v1/conferences", headers=owner, json={"title": "Keys", "locked": True}
    ).json()["conference_id"]
    with client.websocket_connect("/v1/signaling", headers=owner) as mod:
        until(mod, "hello")
        mod.send_json({"type": "join", "conference_id": cid})
        got = until(mod, "media.keys")
        assert got[-1]["srtp"]["key"].startswith("key-for-p-")
        with (
            client.websocket_connect("/v1/signaling", headers=waiting) as w,
            client.websocket_connect("/v1/signaling", headers=rejected) as r,
        ):
            until(w, "hello")
            until(r, "hello")
            w.send_json({"type": "join", "conference_id": cid})
            wait_id = until(w, "lobby.waiting")[-1]["participant_id"]
            r.send_json({"type": "join", "conference_id": cid})
            reject_id = until(r, "lobby.waiting")[-1]["participant_id"]
            assert wait_id not in keys.issued and reject_id not in keys.issued
            mod.send_json({"type": "reject", "participant_id": reject_id})
            rejected_saw = until(r, "rejected")
            assert not {"media.keys", "roster"} & {m["type"] for m in rejected_saw}
            assert reject_id not in keys.issued
            mod.send_json({"type": "admit", "participant_id": wait_id})
            admitted = until(w, "media.keys")
            assert [m["type"] for m in admitted][:2] == ["admitted", "roster"]
            assert admitted[-1]["participant_id"] == wait_id and wait_id in keys.issued
            w.send_json({"type": "leave"})
            rekeyed = until(mod, "media.keys")
            assert rekeyed[-1]["rekey"] is True and rekeyed[-1]["srtp"] == "new"
    assert (wait_id, True) in keys.withdrawn


def test_ending_withdraws_everyone_without_rekeying(client_and_keys: Any) -> None:
    client, keys = client_and_keys
    admin = login(client, None, "endadmin")
    owner, guest = login(client, admin, "endowner"), login(client, admin, "endguest")
    cid = client.post("/v1/conferences", headers=owner, json={"title": "End"}).json()[
        "conference_id"
    ]
    with (
        client.websocket_connect("/v1/signaling", headers=owner) as mod,
        client.websocket_connect("/v1/signaling", headers=guest) as g,
    ):
        until(mod, "hello")
        until(g, "hello")
        mod.send_json({"type": "join", "conference_id": cid})
        mod_id = until(mod, "media.keys")[-1]["participant_id"]
        g.send_json({"type": "join", "conference_id": cid})
        guest_id = until(g, "media.keys")[-1]["participant_id"]
        mod.send_json({"type": "end"})
        ended = until(g, "conference.ended")
    assert "media.keys" not in [m["type"] for m in ended]
    assert {(mod_id, False), (guest_id, False)} <= set(keys.withdrawn)


@pytest.fixture(scope="module")
def gateway_token(inprocess_runtime: RegionRuntime) -> str:
    path = Path(inprocess_runtime.directory) / PSTN_TOKEN_FILE
    path.write_text("gateway-secret-for-tests")
    return "gateway-secret-for-tests"


GOOD = "the region's token"


def gateway_auth(ws: Any, token: str, caller: str) -> None:
    ws.send_json({"type": "auth", "gateway_token": token, "caller": caller})


def test_pstn_gateway_leg_is_marked_unencrypted_in_roster_and_cdr(
    client_and_keys: Any, gateway_token: str, inprocess_runtime: RegionRuntime
) -> None:
    client, keys = client_and_keys
    admin = login(client, None, "pstnadmin")
    owner = login(client, admin, "pstnowner")
    cid = client.post(
        "/v1/conferences", headers=owner, json={"title": "Dial-in", "password": "4321"}
    ).json()["conference_id"]
    with client.websocket_connect("/v1/signaling", headers=owner) as mod:
        until(mod, "hello")
        mod.send_json({"type": "join", "conference_id": cid, "password": "4321"})
        until(mod, "media.keys")
        with client.websocket_connect("/v1/signaling") as phone:
            gateway_auth(phone, gateway_token, "+15550100")
            assert until(phone, "hello")[-1]["account_id"] == "pstn:+15550100"
            phone.send_json({"type": "join", "conference_id": cid, "password": "0000"})
            assert until(phone, "error")[-1]["field"] == "password"  # the PIN is checked
            phone.send_json({"type": "join", "conference_id": cid, "password": "4321"})
            phone_id = until(phone, "media.keys")[-1]["participant_id"]
            assert phone_id in keys.issued
            roster = {p["account_id"]: p for p in until(mod, "roster")[-1]["participants"]}
            assert roster["pstn:+15550100"]["encrypted"] is False
            assert all(p["encrypted"] for a, p in roster.items() if a != "pstn:+15550100")
            phone.send_json({"type": "chat", "text": "a phone cannot chat"})
            assert until(phone, "error")[-1]["error"] == "Forbidden"
        mod.send_json({"type": "end"})
        until(mod, "conference.ended")
    with inprocess_runtime.sessions() as session:
        legs = {
            leg.account_id: leg
            for leg in session.scalars(select(CallLeg).where(CallLeg.account_id.like("pstn:%")))
        }
    leg = legs["pstn:+15550100"]
    assert leg.encrypted is False and leg.transport == PSTN_TRANSPORT and leg.left_at is not None


@pytest.mark.parametrize(
    ("token", "caller", "field"),
    [("wrong-token", "+15550100", None), ("", "+15550100", None), (GOOD, "12ab", "caller")],
    ids=["wrong-token", "no-token", "bad-caller"],
)
def test_gateway_sign_in_needs_the_region_token_and_a_number(
    client_and_keys: Any, gateway_token: str, token: str, caller: str, field: str | None
) -> None:
    client, _keys = client_and_keys
    with client.websocket_connect("/v1/signaling") as ws:
        gateway_auth(ws, gateway_token if token == GOOD else token, caller)
        refusal = ws.receive_json()
    assert refusal["type"] == "error" and refusal["field"] == field
    assert refusal["error"] == ("Invalid" if field else "Unauthenticated")
