"""The meeting REST API against a live region: MT-06 (no encryption switch), MT-10 (sessions, room
systems over TLS, revocation), MT-15 (only the listed fields), MT-19 (operation log), MT-20 (who
sees statistics), and MT-02 (a region answers only for its own conferences)."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from protocol.meeting_client import PASSWORD, MeetingApi
from protocol.stack import Stack
from roomtrust.harness.stores import region_engine
from services.common.ca import key_pem, make_csr, new_private_key
from services.common.passwords import is_password_hash
from services.common.tls import client_context


@pytest.mark.parametrize(
    "key", ["encryption", "encryption_enabled", "srtp", "tls", "media_encryption"]
)
def test_encryption_cannot_be_turned_off(admin_sa: MeetingApi, key: str) -> None:
    before = admin_sa.call("GET", "/v1/enterprise/settings")
    response = admin_sa.request(
        "PUT", "/v1/enterprise/settings", json={key: False, "chat_enabled": False}
    )
    assert response.status_code == 422
    assert response.json()["field"] == key
    assert "encryption is mandatory" in response.json()["reason"]
    assert admin_sa.call("GET", "/v1/enterprise/settings") == before


def test_settings_change_and_unknown_keys_are_refused(admin_sa: MeetingApi) -> None:
    changed = admin_sa.settings(chat_enabled=False, contract_end="2027-06-30")
    assert changed["chat_enabled"] is False and changed["contract_end"] == "2027-06-30"
    response = admin_sa.request("PUT", "/v1/enterprise/settings", json={"theme": "dark"})
    assert response.status_code == 422 and response.json()["field"] == "theme"
    response = admin_sa.request("PUT", "/v1/enterprise/settings", json={"chat_enabled": "yes"})
    assert response.status_code == 422 and response.json()["field"] == "chat_enabled"
    assert "settings.update" in [e["action"] for e in admin_sa.call("GET", "/v1/oplog")]


def test_accounts_store_only_the_listed_fields(admin_sa: MeetingApi, meeting_stack: Stack) -> None:
    response = admin_sa.request(
        "POST",
        "/v1/accounts",
        json={
            "username": "p@example.com",
            "display_name": "P",
            "password": PASSWORD,
            "phone": "+1 555",
        },
    )
    assert response.status_code == 422 and response.json()["field"] == "phone"
    sso = admin_sa.call(
        "POST",
        "/v1/accounts",
        json={"username": f"s{secrets.token_hex(3)}@example.com", "display_name": "S", "sso": True},
    )
    assert sso["sso"] is True and "first_name" not in sso
    me = admin_sa.call("GET", "/v1/me")
    assert {"first_name", "last_name", "address", "company", "display_name", "username"} <= set(me)
    engine = region_engine(meeting_stack, "meeting", "sa")
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("accounts")}
        personal = columns - {
            "id",
            "enterprise_id",
            "kind",
            "role",
            "custom_role_id",
            "access",
            "created_at",
            "registration_digest",
            "cert_serial",
            "sso",
        }
        assert personal == {
            "username",
            "password_hash",
            "display_name",
            "first_name",
            "last_name",
            "address",
            "company",
        }
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT password_hash, first_name, address FROM accounts WHERE enterprise_id = :e"
                ),
                {"e": admin_sa.enterprise_id},
            ).all()
    finally:
        engine.dispose()
    hashes = [r[0] for r in rows if r[0] is not None]
    assert hashes and all(is_password_hash(h) for h in hashes)
    assert [r for r in rows if r[0] is None and (r[1] or r[2])] == []  # SSO member: no admin fields


def test_phone_number_administrator_and_sso_login_refused(meeting_stack: Stack) -> None:
    endpoint = meeting_stack.endpoint("meeting", "na")
    url, ca = endpoint.url, endpoint.ca_file
    with MeetingApi(url, ca) as api:
        phone = f"+1 555 {secrets.randbelow(10**6):06d}"
        api.register_enterprise(username=phone)
        assert api.call("GET", "/v1/me")["username"] == phone
        sso = api.call(
            "POST",
            "/v1/accounts",
            json={
                "username": f"o{secrets.token_hex(3)}@example.com",
                "display_name": "O",
                "sso": True,
            },
        )
        response = api.request(
            "POST", "/v1/auth/login", json={"username": sso["username"], "password": "x" * 12}
        )
        assert response.status_code == 401


def test_plain_http_is_refused(admin_sa: MeetingApi) -> None:
    plain = admin_sa.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz", timeout=5)


def test_room_system_registers_over_tls_and_revocation_bites_at_once(
    admin_sa: MeetingApi, tmp_path: Path
) -> None:
    created = admin_sa.call("POST", "/v1/room-systems", json={"display_name": "Board Room"})
    key = new_private_key()
    csr = make_csr(key, "room-board", "RS-1").decode()
    registered = admin_sa.call(
        "POST",
        "/v1/room-systems/register",
        json={"registration_code": created["registration_code"], "csr_pem": csr},
    )
    again = admin_sa.request(
        "POST",
        "/v1/room-systems/register",
        json={"registration_code": created["registration_code"], "csr_pem": csr},
    )
    assert again.status_code == 403  # the code is one-time
    cert, key_file = tmp_path / "rs.pem", tmp_path / "rs.key"
    cert.write_text(registered["certificate_pem"])
    key_file.write_bytes(key_pem(key))
    ctx: ssl.SSLContext = client_context(admin_sa.ca_file, cert, key_file)
    cid = admin_sa.member("Host").create_conference("With room")["conference_id"]
    with httpx.Client(base_url=admin_sa.url, verify=ctx) as room:
        me = room.get("/v1/me").json()
        assert me["kind"] == "room_system" and set(me["permissions"]) == {
            "call.place_receive",
            "media.self_disable",
        }
        assert room.get("/v1/accounts").status_code == 403

        async def join_then_revoke() -> int | None:
            import websockets

            uri = admin_sa.url.replace("https://", "wss://") + "/v1/signaling"
            async with websockets.connect(uri, ssl=ctx) as ws:
                await ws.recv()  # hello
                await ws.send(json.dumps({"type": "join", "conference_id": cid}))
                await ws.recv()
                await asyncio.to_thread(
                    admin_sa.call, "POST", f"/v1/accounts/{created['account_id']}/revoke"
                )
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None

        assert asyncio.run(join_then_revoke()) == 4401
        refused = room.get("/v1/me")
        assert refused.status_code == 401 and refused.json()["reason"] == "access revoked"
        admin_sa.call("POST", f"/v1/accounts/{created['account_id']}/grant")
        assert room.get("/v1/me").status_code == 200
    actions = [e["action"] for e in admin_sa.call("GET", "/v1/oplog")]
    for action in ("room_system.create", "room_system.register", "account.revoke", "account.grant"):
        assert action in actions


def test_statistics_only_for_roles_that_may_see_them(admin_sa: MeetingApi) -> None:
    owner = admin_sa.member("Stat Owner")
    cid = owner.create_conference("Counted")["conference_id"]

    async def call() -> None:
        sig = await owner.signaling().__aenter__()
        await sig.send({"type": "join", "conference_id": cid})
        await sig.expect("admitted")
        await sig.send({"type": "leave"})
        await sig.drain()
        await sig.__aexit__()

    asyncio.run(call())
    manager = admin_sa.member("Meg Manager", "meeting_manager")
    operator = admin_sa.member("Otto Operator", "meeting_operator")
    records = manager.call("GET", "/v1/statistics/cdr")
    mine = [r for r in records if r["conference_id"] == cid]
    assert len(mine) == 1 and mine[0]["region"] == "sa" and mine[0]["ended_at"]
    assert [(leg["account_id"], leg["encrypted"]) for leg in mine[0]["legs"]] == [
        (owner.account_id, True)
    ]
    assert set(mine[0]) == {"cdr_id", "conference_id", "region", "started_at", "ended_at", "legs"}
    assert manager.call("GET", "/v1/statistics/report")["legs"] >= 1
    assert manager.call("GET", "/v1/statistics/billing")["participant_minutes"] >= 0
    for path in ("/v1/statistics/cdr", "/v1/statistics/report", "/v1/statistics/billing"):
        assert operator.request("GET", path).status_code == 403
        assert owner.request("GET", path).status_code == 403


def test_a_region_answers_only_for_its_own_conferences(
    admin_sa: MeetingApi, meeting_stack: Stack
) -> None:
    cid = admin_sa.member("Resident").create_conference("Stays in sa")["conference_id"]
    endpoint = meeting_stack.endpoint("meeting", "eu")
    url, ca = endpoint.url, endpoint.ca_file
    with MeetingApi(url, ca) as eu_admin:
        eu_admin.register_enterprise()
        response = eu_admin.request("GET", f"/v1/conferences/{cid}")
        assert response.status_code == 409 and "sa" in response.json()["reason"]
    engine = region_engine(meeting_stack, "meeting", "eu")
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM conferences WHERE id = :c"), {"c": cid}
                ).scalar_one()
                == 0
            )
    finally:
        engine.dispose()
