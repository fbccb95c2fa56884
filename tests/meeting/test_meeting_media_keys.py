"""The media-key hook of signaling: keys go to a participant only after admission, never to a
joiner who waits in the lobby or is rejected, and are withdrawn when the participant leaves."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.runtime import RegionRuntime
from services.meeting.api.app import build_app


class RecordingKeys:
    def __init__(self) -> None:
        self.issued: list[str] = []
        self.withdrawn: list[str] = []

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        self.issued.append(participant_id)
        return {"relay": "udp://127.0.0.1:40000", "srtp": {"key": f"key-for-{participant_id}"}}

    async def withdraw(self, conference_id: str, participant_id: str) -> None:
        self.withdrawn.append(participant_id)


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
            until(mod, "roster")
    assert wait_id in keys.withdrawn
