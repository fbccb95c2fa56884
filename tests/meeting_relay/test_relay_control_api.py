"""The relay's control API over TLS: token, admission with keys, refusals, re-key, removal."""

from __future__ import annotations

import asyncio
import base64
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.tls import client_context
from services.meeting.relay.client import RelayControl, RelayControlError, read_counters
from services.meeting.relay.files import TOKEN_FILE, region_directory, running_relays


def test_ready_file_token_and_health(relay: Any) -> None:
    ready = relay.ready
    assert ready["pid"] == relay.proc.pid and ready["region"] == relay.region
    assert ready["control_url"] == f"https://127.0.0.1:{ready['port']}"
    token_file = region_directory(relay.home, relay.region) / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert [r["name"] for r in running_relays(relay.home, relay.region)] == ["relay-t"]
    with httpx.Client(verify=client_context(ready["ca_file"])) as client:
        health = client.get(f"{ready['control_url']}/v1/health").json()
    assert health["status"] == "ok" and health["media"]["port"] == ready["media_port"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_control_calls_need_the_token(relay: Any, token: str | None) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(verify=client_context(relay.ready["ca_file"]), headers=headers) as client:
        url = relay.ready["control_url"]
        assert client.get(f"{url}/v1/counters").status_code == 401
        response = client.put(f"{url}/v1/participants/x", json={"conference_id": "c"})
    assert response.status_code == 401
    assert response.json()["field"] == "authorization"


def test_control_endpoint_is_tls_only(relay: Any) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{relay.ready['port']}/v1/health", timeout=3)


def test_admission_returns_keys_of_the_profile(control: httpx.Client) -> None:
    for profile, length in (("AES_CM_128_HMAC_SHA1_80", 30), ("AEAD_AES_128_GCM", 28)):
        response = control.put(
            f"/v1/participants/adm-{length}", json={"conference_id": "adm", "profile": profile}
        )
        assert response.status_code == 201, response.text
        grant = response.json()
        assert grant["profile"] == profile and grant["conference_id"] == "adm"
        assert len(base64.b64decode(grant["send_key"])) == length
        assert grant["send_key"] != grant["receive_key"]
    listed = {p["participant_id"]: p for p in control.get("/v1/participants").json()}
    assert listed["adm-30"]["address"] is None  # not heard from yet
    for pid in ("adm-30", "adm-28"):
        assert control.delete(f"/v1/participants/{pid}").status_code == 200


def test_supplied_keys_are_used_as_given(control: httpx.Client) -> None:
    send, receive = base64.b64encode(b"s" * 30).decode(), base64.b64encode(b"r" * 30).decode()
    response = control.put(
        "/v1/participants/given",
        json={"conference_id": "g", "send_key": send, "receive_key": receive},
    )
    assert response.status_code == 201
    assert (response.json()["send_key"], response.json()["receive_key"]) == (send, receive)
    control.delete("/v1/participants/given")


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/participants/bad", {"conference_id": "c", "send_key": "!!"}, 422, "send_key"),
        ("/v1/participants/bad", {"conference_id": "c", "receive_key": "AAAA"}, 422, "receive_key"),
        ("/v1/participants/bad", {"conference_id": "c", "profile": "NULL_CIPHER"}, 422, "profile"),
        ("/v1/participants/bad", {"conference_id": "c d"}, 422, "conference_id"),
        ("/v1/participants/bad", {}, 422, "conference_id"),
        ("/v1/participants/b%20d", {"conference_id": "c"}, 422, "participant_id"),
    ],
    ids=["send-key", "receive-key-length", "profile", "conference-id", "missing", "bad-id"],
)
def test_bad_admissions_are_refused_and_change_nothing(
    control: httpx.Client, path: str, body: dict[str, str], status: int, field: str
) -> None:
    before = control.get("/v1/participants").json()
    response = control.put(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and response.json()["reason"]
    assert control.get("/v1/participants").json() == before


def test_duplicate_and_unknown_participants(control: httpx.Client) -> None:
    assert control.put("/v1/participants/dup", json={"conference_id": "d"}).status_code == 201
    again = control.put("/v1/participants/dup", json={"conference_id": "d"})
    assert again.status_code == 409 and again.json()["field"] == "participant_id"
    assert control.delete("/v1/participants/dup").status_code == 200
    assert control.delete("/v1/participants/dup").status_code == 404
    assert control.post("/v1/participants/dup/rekey", json={}).status_code == 404
    assert control.post("/v1/conferences/none/rekey", json={}).status_code == 404


def test_python_client_and_status_counters(relay: Any) -> None:
    async def scenario() -> None:
        async with RelayControl.for_relay(relay.home, relay.region, relay.ready) as api:
            grant = await api.add_participant("cli-a", "cli")
            await api.add_participant("cli-b", "cli", profile="AEAD_AES_128_GCM")
            assert grant["media"]["port"] == relay.ready["media_port"]
            staged = await api.rekey("cli-a")
            assert staged["send_key"] != grant["send_key"]
            everyone = await api.rekey_conference("cli")
            assert sorted(everyone) == ["cli-a", "cli-b"]
            pending = {p["participant_id"]: p["rekey_pending"] for p in await api.participants()}
            assert pending["cli-a"] and pending["cli-b"]
            await api.remove_participant("cli-a")
            await api.remove_participant("cli-b")
            with pytest.raises(RelayControlError) as caught:
                await api.remove_participant("cli-a")
            assert caught.value.status == 404

    asyncio.run(scenario())
    status = read_counters(Path(relay.home), relay.region)
    assert set(status) == {"relay-t"} and "dropped_bad_tag" in status["relay-t"]
