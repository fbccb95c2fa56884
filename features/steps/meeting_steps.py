"""Steps of features/meeting.feature: MT-01, 02, 06, 09, 10, 11, 13 to 20 against live meeting
region processes started once per session in a temporary home."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pytest_bdd import given, parsers, then, when
from typer.testing import CliRunner

from protocol.meeting_client import PASSWORD, MeetingApi, Signal
from protocol.regions import MEETING_REGIONS
from protocol.signaling import MessageType as T
from protocol.signaling import NoticeKind, SignalingClose
from protocol.stack import Stack
from roomtrust.comply.checks import common
from roomtrust.comply.checks import meeting as checks
from roomtrust.harness.stores import region_engine
from services.common.ca import key_pem, make_csr, new_private_key
from services.common.tls import client_context
from services.meeting import audit
from services.meeting.cli import retention_app


def names(text: str) -> list[str]:
    found = [part.strip() for part in text.split(",") if part.strip()]
    assert found, f"no names in {text!r}"
    return found


@pytest.fixture
def mt() -> Iterator[dict[str, Any]]:
    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {"loop": loop, "apis": {}, "sockets": {}, "closers": []}
    yield state
    for sock in state["sockets"].values():
        if not sock.ws.close_code:
            loop.run_until_complete(sock.ws.close())
    loop.close()
    for api in [*state["apis"].values(), *state["closers"]]:
        api.close()


def run(mt: dict[str, Any], coro: Any) -> Any:
    return mt["loop"].run_until_complete(coro)


def body_of(response: httpx.Response) -> dict[str, Any] | None:
    """A JSON object answer, or None when the answer is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def socket_of(mt: dict[str, Any], name: str) -> Signal:
    sock: Signal = mt["sockets"][name]
    return sock


# -- stack, enterprises, users ----------------------------------------------------------------------


@given("the meeting regions are running", target_fixture="stack")
def meeting_regions_running(meeting_stack: Stack) -> Stack:
    assert set(meeting_stack.regions("meeting")) == set(MEETING_REGIONS)
    return meeting_stack


def new_enterprise(stack: Stack, mt: dict[str, Any], region: str, **kwargs: Any) -> MeetingApi:
    endpoint = stack.endpoint("meeting", region)
    url, ca = endpoint.url, endpoint.ca_file
    admin = MeetingApi(url, ca)
    admin.register_enterprise(**kwargs)
    mt["admin"], mt["region"] = admin, region
    mt["closers"].append(admin)
    return admin


@given(parsers.parse('an enterprise in meeting region "{region}" with the users "{people}"'))
def enterprise_with_users(stack: Stack, mt: dict[str, Any], region: str, people: str) -> None:
    admin = new_enterprise(stack, mt, region)
    for person in names(people):
        mt["apis"][person] = admin.member(person)


# -- MT-01, MT-02: placement and residency -------------------------------------------------------


@when(parsers.parse('"{person}" creates a conference for participants in "{places}"'))
def create_placed(mt: dict[str, Any], person: str, places: str) -> None:
    mt["conference"] = mt["apis"][person].create_conference(
        "Placed", participant_locations=names(places)
    )


@then(parsers.parse('the conference is hosted in region "{region}"'))
def hosted_in(mt: dict[str, Any], region: str) -> None:
    checks.conference_hosted_in(mt["conference"], region)


@then(
    parsers.parse('region "{other}" does not answer for the conference but names region "{region}"')
)
def other_region_points(stack: Stack, mt: dict[str, Any], other: str, region: str) -> None:
    endpoint = stack.endpoint("meeting", other)
    url, ca = endpoint.url, endpoint.ca_file
    with MeetingApi(url, ca) as outsider:
        outsider.register_enterprise()
        response = outsider.request("GET", f"/v1/conferences/{mt['conference']['conference_id']}")
    checks.redirected_to_home_region(response.status_code, body_of(response), region)


@then("no other meeting region stores the conference")
def stored_once(stack: Stack, mt: dict[str, Any]) -> None:
    cid = mt["conference"]["conference_id"]
    seen = {}
    for region in MEETING_REGIONS:
        engine = region_engine(stack, "meeting", region)
        try:
            with engine.connect() as conn:
                seen[region] = conn.execute(
                    sa.text("SELECT count(*) FROM conferences WHERE id = :c"), {"c": cid}
                ).scalar_one()
        finally:
            engine.dispose()
    checks.stored_only_in_home_region(seen, mt["conference"]["region"], MEETING_REGIONS)


@then(parsers.parse('participants in "{places}" are placed in region "{region}"'))
def placed(mt: dict[str, Any], places: str, region: str) -> None:
    answer = mt["admin"].call(
        "POST", "/v1/placement", json={"participant_locations": names(places)}
    )
    checks.placed_nearest(answer, region)


# -- MT-06 ---------------------------------------------------------------------------------------


@when(parsers.parse('the administrator sets "{key}" to false'))
def set_false(mt: dict[str, Any], key: str) -> None:
    mt["before"] = mt["admin"].call("GET", "/v1/enterprise/settings")
    mt["response"] = mt["admin"].request("PUT", "/v1/enterprise/settings", json={key: False})


@then(parsers.parse('the answer is {status:d} naming the field "{field}"'))
def answer_names_field(mt: dict[str, Any], status: int, field: str) -> None:
    response = mt["response"]
    common.answer_names_field(response.status_code, body_of(response), status, field)


@then("the enterprise settings have no encryption switch")
def no_switch(mt: dict[str, Any]) -> None:
    settings = mt["admin"].call("GET", "/v1/enterprise/settings")
    checks.no_encryption_switch(settings, mt["before"])


@then(parsers.parse('region "{region}" refuses plain HTTP and plain WebSocket connections'))
def plain_refused(stack: Stack, region: str) -> None:
    import websockets

    endpoint = stack.endpoint("meeting", region)

    url, _ca = endpoint.url, endpoint.ca_file
    answers: dict[str, str | None] = {}
    try:
        plain = httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
        answers["plain HTTP"] = f"HTTP {plain.status_code}"
    except httpx.HTTPError:
        answers["plain HTTP"] = None

    async def plain_ws() -> None:
        async with websockets.connect(url.replace("https://", "ws://") + "/v1/signaling"):
            pass

    try:
        asyncio.run(plain_ws())
        answers["plain WebSocket"] = "the WebSocket opened"
    except (OSError, websockets.InvalidHandshake, websockets.InvalidMessage, EOFError):
        answers["plain WebSocket"] = None
    checks.plain_connections_refused(answers)


# -- MT-09: lobby, one-off, moderation ----------------------------------------------------------


def owner_joins(mt: dict[str, Any], person: str, **options: Any) -> None:
    mt["conference"] = mt["apis"][person].create_conference("Meeting", **options)
    mt["moderator"] = person
    sock = run(mt, mt["apis"][person].signaling().__aenter__())
    mt["sockets"][person] = sock
    run(mt, sock.send({"type": T.JOIN, "conference_id": mt["conference"]["conference_id"]}))
    run(mt, sock.expect(T.ADMITTED))


@given(parsers.parse('"{person}" owns a locked conference and has joined it'))
def owns_locked(mt: dict[str, Any], person: str) -> None:
    owner_joins(mt, person, locked=True)


@given(parsers.parse('"{person}" owns a conference and has joined it'))
def owns_open(mt: dict[str, Any], person: str) -> None:
    owner_joins(mt, person)


@given(parsers.parse('"{person}" owns a one-off conference and has joined it'))
def owns_one_off(mt: dict[str, Any], person: str) -> None:
    owner_joins(mt, person, kind="one_off")


@given(parsers.parse('"{person}" owns a hidden conference'))
def owns_hidden(mt: dict[str, Any], person: str) -> None:
    mt["hidden"] = mt["apis"][person].create_conference("Hidden", hidden=True)


@when(parsers.parse('"{person}" joins the conference'))
def joins(mt: dict[str, Any], person: str) -> None:
    sock = run(mt, mt["apis"][person].signaling().__aenter__())
    mt["sockets"][person] = sock
    run(mt, sock.send({"type": T.JOIN, "conference_id": mt["conference"]["conference_id"]}))
    first = run(mt, sock.next())
    assert first is not None and first["type"] in (T.ADMITTED, T.LOBBY_WAITING), first
    mt.setdefault("participant_ids", {})[person] = first["participant_id"]


@then(parsers.parse('"{person}" waits in the lobby without the roster'))
def waits(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    run(mt, sock.drain())
    checks.waits_in_lobby(person, sock.types())
    knock = run(mt, socket_of(mt, mt["moderator"]).expect(T.LOBBY_KNOCK))
    checks.moderator_told_of(person, knock)


@when(parsers.parse('the moderator admits "{person}"'))
def admits(mt: dict[str, Any], person: str) -> None:
    pid = mt["participant_ids"][person]
    run(mt, socket_of(mt, mt["moderator"]).send({"type": T.ADMIT, "participant_id": pid}))


@when(parsers.parse('the moderator rejects "{person}"'))
def rejects(mt: dict[str, Any], person: str) -> None:
    pid = mt["participant_ids"][person]
    run(mt, socket_of(mt, mt["moderator"]).send({"type": T.REJECT, "participant_id": pid}))


@then(parsers.parse('"{person}" is in the conference and receives the roster'))
def in_conference(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    run(mt, sock.expect(T.ADMITTED))
    roster = run(mt, sock.expect(T.ROSTER))
    checks.in_roster(person, roster)


@then(parsers.parse('"{person}" is disconnected and never received the roster or media keys'))
def rejected_clean(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    code = run(mt, sock.closed())
    checks.rejected_without_secrets(person, code, sock.types())


@when(parsers.parse('"{person}" joins the conference {count:d} times at once'))
def crowd_joins(mt: dict[str, Any], person: str, count: int) -> None:
    api = mt["apis"][person]
    cid = mt["conference"]["conference_id"]

    async def crowd() -> list[Signal]:
        sockets = [await api.signaling().__aenter__() for _ in range(count)]
        await asyncio.gather(*(s.send({"type": T.JOIN, "conference_id": cid}) for s in sockets))
        for s in sockets:
            await s.expect(T.LOBBY_WAITING)
        await asyncio.gather(*(s.drain() for s in sockets))
        return sockets

    mt["crowd"] = run(mt, crowd())
    for i, sock in enumerate(mt["crowd"]):
        mt["sockets"][f"{person}#{i}"] = sock


@then(parsers.parse('the roster holds only "{person}" and {count:d} people wait in the lobby'))
def only_moderator(mt: dict[str, Any], person: str, count: int) -> None:
    mod = socket_of(mt, mt["moderator"])
    run(mt, mod.drain())
    run(mt, mod.send({"type": T.LOCK, "locked": True}))
    roster = run(mt, mod.expect(T.ROSTER))
    checks.only_moderator_admitted(roster, person, count, [s.types() for s in mt["crowd"]])


@then(parsers.parse('the directory seen by "{person}" lists neither conference'))
def not_listed(mt: dict[str, Any], person: str) -> None:
    visible = {c["conference_id"] for c in mt["apis"][person].directory()}
    mine = {c["conference_id"] for c in mt["apis"][mt["moderator"]].call("GET", "/v1/conferences")}
    hidden = {mt["conference"]["conference_id"], mt["hidden"]["conference_id"]}
    checks.hidden_from_directory(visible | mine, hidden)


@when(parsers.parse('"{person}" ends the conference'))
def ends(mt: dict[str, Any], person: str) -> None:
    result = mt["apis"][person].end(mt["conference"]["conference_id"])
    assert result["ended"] is True
    for sock in mt["sockets"].values():
        run(mt, sock.closed())


@then(parsers.parse('"{person}" cannot join the conference because it no longer exists'))
def cannot_join(mt: dict[str, Any], person: str) -> None:
    sock = run(mt, mt["apis"][person].signaling().__aenter__())
    mt["sockets"][f"{person}-late"] = sock
    run(mt, sock.send({"type": T.JOIN, "conference_id": mt["conference"]["conference_id"]}))
    error = run(mt, sock.expect(T.ERROR))
    checks.join_refused_not_found(error)


@then(parsers.parse('"{person}" may not mute anyone'))
def may_not_mute(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    run(mt, sock.drain())
    run(mt, sock.send({"type": T.MUTE, "target": "all"}))
    checks.refused_as_forbidden([run(mt, sock.expect(T.ERROR))])


@when("the moderator mutes all participants")
def mute_all(mt: dict[str, Any]) -> None:
    run(mt, socket_of(mt, mt["moderator"]).send({"type": T.MUTE, "target": "all"}))


@then(parsers.parse('"{first}" and "{second}" are told they were muted by "{by}"'))
def told_muted(mt: dict[str, Any], first: str, second: str, by: str) -> None:
    notices = {p: run(mt, socket_of(mt, p).expect(T.MUTED)) for p in (first, second)}
    checks.told_muted_by(notices, by)


@when("the moderator turns off her own video")
def own_video_off(mt: dict[str, Any]) -> None:
    run(mt, socket_of(mt, mt["moderator"]).send({"type": T.MEDIA, "video": False}))


@then(parsers.parse('"{person}" sees the moderator\'s video off'))
def sees_video_off(mt: dict[str, Any], person: str) -> None:
    checks.video_off(run(mt, socket_of(mt, person).expect(T.MEDIA_STATE)))


@when(parsers.parse('the moderator removes "{person}"'))
def removes(mt: dict[str, Any], person: str) -> None:
    pid = mt["participant_ids"][person]
    run(mt, socket_of(mt, mt["moderator"]).send({"type": T.REMOVE, "target": pid}))


@then(parsers.parse('"{person}" is disconnected'))
def disconnected(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    checks.closed_with(
        person, run(mt, sock.closed()), SignalingClose.REMOVED, sock.types(), T.REMOVED
    )


# -- MT-10 ---------------------------------------------------------------------------------------


@when(parsers.parse('the administrator revokes "{person}"'))
def revoke(mt: dict[str, Any], person: str) -> None:
    mt["admin"].call("POST", f"/v1/accounts/{mt['apis'][person].account_id}/revoke")


@then(parsers.parse('"{person}"\'s signaling connection is closed'))
def socket_closed(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    checks.closed_with(
        person, run(mt, sock.closed()), SignalingClose.UNAUTHENTICATED, sock.types(), None
    )


@then(parsers.parse('"{person}"\'s next request is refused with {status:d}'))
def next_refused(mt: dict[str, Any], person: str, status: int) -> None:
    response = mt["apis"][person].request("GET", "/v1/me")
    login = mt["apis"][person].request(
        "POST",
        "/v1/auth/login",
        json={"username": mt["apis"][person].username, "password": PASSWORD},
    )
    checks.revoked_refused(
        response.status_code, body_of(response), login.status_code, body_of(login), status
    )


@when(parsers.parse('the administrator registers a room system "{name}"'))
def register_room(mt: dict[str, Any], name: str, tmp_path: Path) -> None:
    admin = mt["admin"]
    created = admin.call("POST", "/v1/room-systems", json={"display_name": name})
    key = new_private_key()
    registered = admin.call(
        "POST",
        "/v1/room-systems/register",
        json={
            "registration_code": created["registration_code"],
            "csr_pem": make_csr(key, "room", "RS").decode(),
        },
    )
    cert, key_file = tmp_path / "room.pem", tmp_path / "room.key"
    cert.write_text(registered["certificate_pem"])
    key_file.write_bytes(key_pem(key))
    mt["room"] = httpx.Client(
        base_url=admin.url, verify=client_context(admin.ca_file, cert, key_file)
    )
    mt["closers"].append(mt["room"])
    mt["room_id"] = created["account_id"]


@then("the room system is known by its client certificate and may only place calls")
def room_known(mt: dict[str, Any]) -> None:
    me = mt["room"].get("/v1/me").json()
    checks.room_system_limited(me, mt["room"].get("/v1/accounts").status_code)


@when("the administrator revokes the room system")
def revoke_room(mt: dict[str, Any]) -> None:
    mt["admin"].call("POST", f"/v1/accounts/{mt['room_id']}/revoke")


@then(parsers.parse("the room system's next request is refused with {status:d}"))
def room_refused(mt: dict[str, Any], status: int) -> None:
    common.status_is(mt["room"].get("/v1/me").status_code, status, "the revoked room system")


# -- MT-11 ---------------------------------------------------------------------------------------


@when(parsers.parse('the administrator creates an account with the role "{role}"'))
def account_with_role(mt: dict[str, Any], role: str) -> None:
    mt["account"] = mt["admin"].member(f"{role} holder", role)
    mt["closers"].append(mt["account"])


@then(parsers.parse('that account holds exactly "{permissions}"'))
def holds_exactly(mt: dict[str, Any], permissions: str) -> None:
    checks.holds_exactly(mt["account"].call("GET", "/v1/me")["permissions"], names(permissions))


@then(parsers.parse('the administrator holds "{permissions}"'))
def admin_holds(mt: dict[str, Any], permissions: str) -> None:
    checks.holds_exactly(mt["admin"].call("GET", "/v1/me")["permissions"], names(permissions))


@when(parsers.parse('the administrator defines a customize role with "{permissions}"'))
def define_custom(mt: dict[str, Any], permissions: str) -> None:
    mt["custom_role"] = mt["admin"].call(
        "POST",
        "/v1/custom-roles",
        json={"name": f"custom-{secrets.token_hex(3)}", "permissions": names(permissions)},
    )


@when("the administrator creates an account with that customize role")
def account_with_custom(mt: dict[str, Any]) -> None:
    mt["account"] = mt["admin"].member(
        "Custom holder", "customize", mt["custom_role"]["custom_role_id"]
    )
    mt["closers"].append(mt["account"])


@then(parsers.parse('a customize role with "{permission}" is refused naming the field "{field}"'))
def custom_refused(mt: dict[str, Any], permission: str, field: str) -> None:
    response = mt["admin"].request(
        "POST", "/v1/custom-roles", json={"name": "bad", "permissions": [permission]}
    )
    common.answer_names_field(response.status_code, body_of(response), 422, field)


GATED_PROBES: dict[str, tuple[str, str, str]] = {
    # permission -> (method, path, body kind): a write each, the permission's whole purpose
    "segment.resources": ("POST", "/v1/segments", "segment"),
    "teams.access": ("PUT", "/v1/enterprise/teams-access", "teams"),
}


@then("the segment resources and Teams access endpoints answer only the roles holding them")
def segment_and_teams_gated(mt: dict[str, Any]) -> None:
    admin = mt["admin"]
    holders = {"administrator": admin}
    for role in ("user", "operation_manager", "meeting_operator", "meeting_manager"):
        holders[role] = admin.member(f"{role} gate", role)
    holders["customize"] = admin.member(
        "customize gate", "customize", mt["custom_role"]["custom_role_id"]
    )
    statuses: dict[str, int] = {}
    allowed: dict[str, bool] = {}
    for role, api in holders.items():
        held = set(api.call("GET", "/v1/me")["permissions"])
        for permission, (method, path, kind) in GATED_PROBES.items():
            body: dict[str, Any] = (
                {"name": f"gate-{secrets.token_hex(3)}", "recording_minutes": 30}
                if kind == "segment"
                else {"interop_enabled": True}
            )
            probe = f"{role} {method} {path}"
            statuses[probe] = api.request(method, path, json=body).status_code
            allowed[probe] = permission in held
    checks.gated_by_permission(statuses, allowed)


@then(parsers.parse('an operation manager cannot give anyone the role "{role}"'))
def ops_cannot_assign(mt: dict[str, Any], role: str) -> None:
    ops = mt["admin"].member("Ops", "operation_manager")
    mt["closers"].append(ops)
    user = ops.create_account("Someone")
    response = ops.request("PUT", f"/v1/accounts/{user['account_id']}/role", json={"role": role})
    checks.cannot_assign_role(user.get("role"), response.status_code)


# -- MT-13, MT-14, MT-15: retention and stored fields --------------------------------------------


@given(
    parsers.parse(
        'an enterprise in meeting region "{region}" whose contract ended {days:d} days ago, '
        "with a finished call"
    )
)
def ended_enterprise(stack: Stack, mt: dict[str, Any], region: str, days: int) -> None:
    mt["contract_end"] = dt.date.today() - dt.timedelta(days=days)
    admin = new_enterprise(stack, mt, region, contract_end=mt["contract_end"].isoformat())
    user = admin.member("Leaving User")
    mt["closers"].append(user)
    cid = user.create_conference("Final call")["conference_id"]

    async def call() -> None:
        async with user.signaling() as sock:
            await sock.send({"type": T.JOIN, "conference_id": cid})
            await sock.expect(T.ADMITTED)
            await sock.send({"type": T.LEAVE})
            await sock.drain()

    run(mt, call())


def enterprise_rows(stack: Stack, region: str, enterprise_id: str) -> dict[str, int]:
    engine = region_engine(stack, "meeting", region)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE enterprise_id = :e"),
                    {"e": enterprise_id},
                ).scalar_one()
                for table in ("accounts", "call_records", "conferences", "enterprises")
                if table != "enterprises"
            }
    finally:
        engine.dispose()


@when(parsers.parse('retention runs in region "{region}" at contract end plus {days:d} days'))
def retention_at(stack: Stack, mt: dict[str, Any], region: str, days: int) -> None:
    at = dt.datetime.combine(mt["contract_end"], dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=days)
    result = CliRunner().invoke(
        retention_app,
        ["run", "--home", str(stack.home), "--region", region, "--now", at.isoformat()],
    )
    assert result.exit_code == 0, result.output


@then(
    parsers.parse(
        'the enterprise\'s call records and accounts are still stored in region "{region}"'
    )
)
def still_stored(stack: Stack, mt: dict[str, Any], region: str) -> None:
    rows = enterprise_rows(stack, region, mt["admin"].enterprise_id)
    checks.retained_until_deadline(rows, mt["admin"].request("GET", "/v1/me").status_code)


@then(parsers.parse('the enterprise\'s call records and accounts are gone from region "{region}"'))
def gone(stack: Stack, mt: dict[str, Any], region: str) -> None:
    rows = enterprise_rows(stack, region, mt["admin"].enterprise_id)
    checks.deleted_after_deadline(rows, mt["admin"].request("GET", "/v1/me").status_code)


@given(parsers.parse('server log files aged {young:d} and {old:d} days in region "{region}"'))
def aged_logs(stack: Stack, mt: dict[str, Any], young: int, old: int, region: str) -> None:
    logs = stack.home / "meeting" / region / "logs"
    today = dt.datetime.now(dt.UTC).date()
    mt["logs"] = {}
    for age in (young, old):
        path = logs / f"meeting-{(today - dt.timedelta(days=age)).isoformat()}.log"
        path.write_text("INFO conference started\n")
        mt["logs"][age] = path


@when(parsers.parse('retention runs in region "{region}" now'))
def retention_now(stack: Stack, region: str) -> None:
    result = CliRunner().invoke(
        retention_app, ["run", "--home", str(stack.home), "--region", region]
    )
    assert result.exit_code == 0, result.output


@then(
    parsers.parse("the log file aged {old:d} days is gone and the one aged {young:d} days is kept")
)
def logs_aged(mt: dict[str, Any], old: int, young: int) -> None:
    checks.log_retention(mt["logs"][old].exists(), mt["logs"][young].exists())


@when(parsers.parse('the administrator creates an account with the extra field "{field}"'))
def extra_field(mt: dict[str, Any], field: str) -> None:
    mt["response"] = mt["admin"].request(
        "POST",
        "/v1/accounts",
        json={
            "username": f"x{secrets.token_hex(3)}@example.com",
            "display_name": "X",
            "password": PASSWORD,
            field: "+1 555 0100",
        },
    )


@then(parsers.parse('the accounts table of region "{region}" has only the listed personal fields'))
def listed_fields(stack: Stack, region: str) -> None:
    engine = region_engine(stack, "meeting", region)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("accounts")}
    finally:
        engine.dispose()
    checks.only_listed_account_fields(columns)


@then("every stored password is a salted hash")
def hashed(stack: Stack, mt: dict[str, Any]) -> None:
    engine = region_engine(stack, "meeting", mt["region"])
    try:
        with engine.connect() as conn:
            stored = (
                conn.execute(
                    sa.text("SELECT password_hash FROM accounts WHERE password_hash IS NOT NULL")
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    common.password_hashes(stored, minimum=1)


@when(parsers.parse('"{person}" says "{text}" in the chat'))
def says(mt: dict[str, Any], person: str, text: str) -> None:
    mt["chat_text"] = text
    run(mt, socket_of(mt, person).send({"type": T.CHAT, "text": text}))
    assert run(mt, socket_of(mt, mt["moderator"]).expect(T.CHAT))["text"] == text


@then(
    parsers.parse(
        'the call record lists both accounts with encrypted legs, times and region "{region}" '
        "and nothing else"
    )
)
def call_record(mt: dict[str, Any], region: str) -> None:
    manager = mt["admin"].member("Stats Reader", "meeting_manager")
    mt["closers"].append(manager)
    records = [
        r
        for r in manager.call("GET", "/v1/statistics/cdr")
        if r["conference_id"] == mt["conference"]["conference_id"]
    ]
    accounts = {str(api.account_id) for api in mt["apis"].values()}
    checks.cdr_metadata_only(records, region, accounts, mt["chat_text"])


# -- MT-16, MT-17, MT-18 ------------------------------------------------------------------------


@when(parsers.parse('"{person}" starts recording'))
def start_recording(stack: Stack, mt: dict[str, Any], person: str) -> None:
    mt["files_before"] = audit.recording_files(stack.home)
    run(mt, socket_of(mt, person).send({"type": T.RECORD, "action": "start"}))
    notice = run(mt, socket_of(mt, person).expect(T.NOTICE))
    mt["recording_id"] = notice["recording_id"]
    mt.setdefault("notices", {})[person] = [notice]


@when(parsers.parse('"{person}" stops recording'))
def stop_recording(mt: dict[str, Any], person: str) -> None:
    run(mt, socket_of(mt, person).send({"type": T.RECORD, "action": "stop"}))
    assert run(mt, socket_of(mt, person).expect(T.NOTICE))["kind"] == NoticeKind.RECORDING_STOPPED


@then(parsers.parse('"{a}", "{b}" and "{c}" were told the call is recorded by "{recorder}"'))
def told_recorded(mt: dict[str, Any], a: str, b: str, c: str, recorder: str) -> None:
    notices = {}
    for person in (a, b, c):
        sock = socket_of(mt, person)
        run(mt, sock.drain())
        notices[person] = [m for m in sock.received if m["type"] == T.NOTICE]
    checks.told_who_records(notices, recorder)


@then(parsers.parse('the recording file exists only under region "{region}" and is encrypted'))
def file_in_region(stack: Stack, mt: dict[str, Any], region: str) -> None:
    home = stack.home
    after = audit.recording_files(home)
    new = {r: set(files) - set(mt["files_before"].get(r, [])) for r, files in after.items()}
    path = home / "meeting" / region / "recordings" / f"{mt['recording_id']}.rec"
    raw = path.read_bytes() if path.exists() else b""
    checks.recording_only_in(
        new, region, mt["recording_id"], raw, mt["conference"]["conference_id"]
    )


@then("the recording cannot be shared outside the organisation")
def not_shared_outside(stack: Stack, mt: dict[str, Any]) -> None:
    endpoint = stack.endpoint("meeting", mt["region"])
    url, ca = endpoint.url, endpoint.ca_file
    with MeetingApi(url, ca) as stranger:
        stranger.register_enterprise("Elsewhere Inc")
        recorder = next(iter(mt["notices"]))
        response = mt["apis"][recorder].request(
            "POST",
            f"/v1/recordings/{mt['recording_id']}/share",
            json={"account_id": stranger.account_id},
        )
        fetched = stranger.request("GET", f"/v1/recordings/{mt['recording_id']}").status_code
        checks.not_shared_outside(response.status_code, fetched)


@given("the administrator disables chat, recording and live streaming")
def disable_all(mt: dict[str, Any]) -> None:
    mt["admin"].settings(chat_enabled=False, recording_enabled=False, live_streaming_enabled=False)


@then(parsers.parse('"{person}"\'s chat, recording and live streaming are refused'))
def all_refused(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    errors = []
    for message in (
        {"type": T.CHAT, "text": "hello"},
        {"type": T.RECORD, "action": "start"},
        {"type": T.STREAM, "action": "start"},
    ):
        run(mt, sock.send(message))
        errors.append(run(mt, sock.expect(T.ERROR)))
    checks.refused_as_forbidden(errors, because="administrator")


@when("the administrator enables chat")
def enable_chat(mt: dict[str, Any]) -> None:
    mt["admin"].settings(chat_enabled=True)


@then(parsers.parse('"{person}" can chat'))
def can_chat(mt: dict[str, Any], person: str) -> None:
    sock = socket_of(mt, person)
    run(mt, sock.send({"type": T.CHAT, "text": "enabled now"}))
    checks.chat_echoed("enabled now", run(mt, sock.expect(T.CHAT)))


@when(parsers.parse('"{person}" says a unique marker in the chat'))
def says_marker(mt: dict[str, Any], person: str) -> None:
    mt["marker"] = f"CHATMARK-{secrets.token_hex(8)}"
    run(mt, socket_of(mt, person).send({"type": T.CHAT, "text": f"remember {mt['marker']}"}))
    received = run(mt, socket_of(mt, mt["moderator"]).expect(T.CHAT))
    assert mt["marker"] in received["text"]


@then("the marker appears in no database, log or storage file of any meeting region")
def no_marker(stack: Stack, mt: dict[str, Any]) -> None:
    home = stack.home
    traces = {
        region: audit.trace_of(home, region, mt["marker"], stack.schema_prefix)
        for region in MEETING_REGIONS
    }
    checks.marker_nowhere(traces, len(list((home / "logs").glob("meeting-*.log"))))


# -- MT-19, MT-20 -------------------------------------------------------------------------------


@when(
    parsers.parse('the administrator changes the settings, assigns a role and revokes "{person}"')
)
def admin_actions(mt: dict[str, Any], person: str) -> None:
    admin = mt["admin"]
    admin.settings(recording_view_restricted=True)
    other = admin.create_account("Role Target")
    admin.call("PUT", f"/v1/accounts/{other['account_id']}/role", json={"role": "meeting_operator"})
    admin.call("POST", f"/v1/accounts/{mt['apis'][person].account_id}/revoke")


@then(parsers.parse('the operation log holds "{actions}"'))
def oplog_holds(mt: dict[str, Any], actions: str) -> None:
    checks.oplog_holds(mt["admin"].call("GET", "/v1/oplog"), names(actions))


@then("an operation manager and a meeting manager see reports, CDR and billing")
def stats_seen(mt: dict[str, Any]) -> None:
    checks.statistics_access(statistics_statuses(mt, ("operation_manager", "meeting_manager")), 200)


@then("a user and a meeting operator are refused them")
def stats_refused(mt: dict[str, Any]) -> None:
    checks.statistics_access(statistics_statuses(mt, ("user", "meeting_operator")), 403)


def statistics_statuses(mt: dict[str, Any], roles: tuple[str, ...]) -> dict[str, int]:
    """The status each role gets on each statistics path (`role GET path` -> status)."""
    statuses = {}
    for role in roles:
        viewer = mt["admin"].member(f"{role} viewer", role)
        mt["closers"].append(viewer)
        for path in ("/v1/statistics/report", "/v1/statistics/cdr", "/v1/statistics/billing"):
            statuses[f"{role} GET {path}"] = viewer.request("GET", path).status_code
    return statuses
