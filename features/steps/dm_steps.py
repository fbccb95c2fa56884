"""Steps of features/dm.feature: DM-01, 02, 04, 07, 08, 09, 10 against the live local stack."""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pytest_bdd import given, parsers, then, when

from protocol.stack import Stack
from roomtrust.comply.checks import common, dm
from roomtrust.harness.stores import region_engine, table_counts
from services.dm.client import DeviceCredential, DmAdmin
from services.dm.domain.catalogue import MANAGED_MODELS

PASSWORD = "correct horse battery staple"


def _mac() -> str:
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def _device(tmp_path: Path, model: str = "MeetingBar A30") -> DeviceCredential:
    return DeviceCredential(_mac(), f"SN{secrets.token_hex(4)}", model, tmp_path / "keys")


def _admin(stack: Stack, region: str) -> DmAdmin:
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    admin = DmAdmin(url, ca)
    email = f"qa-{secrets.token_hex(4)}@example.com"
    admin.register("QA Corp", email, PASSWORD)
    admin.login(email, PASSWORD)
    return admin


def _body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@pytest.fixture
def ctx() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    for key in ("http", "admin"):
        if key in state:
            state[key].close()


@given("the local stack is running", target_fixture="stack")
def _stack(live_stack: Stack) -> dict[str, Any]:
    assert live_stack.regions("dm"), "the stack has no DM region"
    return live_stack


@given(parsers.parse('an administrator of an enterprise in DM region "{region}" with a site'))
def _admin_with_site(stack: Stack, ctx: dict[str, Any], region: str) -> None:
    admin = _admin(stack, region)
    ctx["admin"], ctx["site"], ctx["region"] = admin, admin.create_site("HQ", "UTC"), region
    ctx["counts"] = table_counts(region_engine(stack, "dm", region))


@when("the administrator deploys one device of every managed model")
def _deploy_all(ctx: dict[str, Any], tmp_path: Path) -> None:
    ctx["devices"] = []
    for model in MANAGED_MODELS:
        device = _device(tmp_path, model)
        ctx["admin"].deploy(device.mac, device.serial_number, model, ctx["site"])
        ctx["devices"].append(device)


@when("every deployed device enrolls")
def _enroll_all(stack: Stack, ctx: dict[str, Any]) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    for device in ctx["devices"]:
        assert device.enroll(url, ca).status_code == 201, device.model


@then("every managed model has an enrolled device")
def _all_models_enrolled(ctx: dict[str, Any]) -> None:
    enrolled = {d["model"] for d in ctx["admin"].devices() if d["enrolled"]}
    dm.every_model_enrolled(enrolled, MANAGED_MODELS)


@then(
    parsers.parse('deploying a model outside the catalogue is refused naming the field "{field}"')
)
def _unknown_model(ctx: dict[str, Any], field: str) -> None:
    body = {"mac": _mac(), "serial_number": "SN0", "model": "MeetingPhone Z1"}
    response = ctx["admin"].http.post("/v1/devices", json={**body, "site_id": ctx["site"]})
    common.answer_names_field(response.status_code, _body(response), 422, field)


@given("a device that no administrator deployed", target_fixture="device")
def _undeployed(tmp_path: Path) -> DeviceCredential:
    return _device(tmp_path)


@when(parsers.parse('it asks region "{region}" to enroll'))
def _ask_enroll(stack: Stack, ctx: dict[str, Any], device: DeviceCredential, region: str) -> None:
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    ctx["response"] = device.enroll(url, ca)
    dm.no_certificate_issued(device.cert_file.exists(), "a device nobody deployed")


@when(parsers.parse('telemetry is sent to region "{region}" without a client certificate'))
def _anonymous_telemetry(stack: Stack, ctx: dict[str, Any], region: str) -> None:
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    with httpx.Client(base_url=url, verify=str(ca)) as http:
        ctx["response"] = http.post("/v1/device/telemetry", json={"status": "online"})


@then(parsers.parse("the answer is {status:d} with a reason"))
def _status_with_reason(ctx: dict[str, Any], status: int) -> None:
    response = ctx["response"]
    common.status_with_reason(response.status_code, _body(response), status)


@then(parsers.parse('no table of region "{region}" gained a row'))
def _no_rows(stack: Stack, ctx: dict[str, Any], region: str) -> None:
    dm.no_table_gained_a_row(ctx["counts"], table_counts(region_engine(stack, "dm", region)))


@given("a deployed and enrolled device", target_fixture="device")
def _enrolled(stack: Stack, ctx: dict[str, Any], tmp_path: Path) -> DeviceCredential:
    device = _device(tmp_path)
    ctx["admin"].deploy(device.mac, device.serial_number, device.model, ctx["site"])
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    assert device.enroll(url, ca).status_code == 201
    ctx["counts"] = table_counts(region_engine(stack, "dm", ctx["region"]))
    ctx["http"] = device.client(url, ca)
    return device


@given("the device's heartbeat is accepted")
def _heartbeat_ok(ctx: dict[str, Any]) -> None:
    assert ctx["http"].post("/v1/device/heartbeat", json={}).status_code == 200


@when("the administrator un-deploys the device")
def _undeploy(ctx: dict[str, Any], device: DeviceCredential) -> None:
    assert device.device_id
    ctx["admin"].undeploy(device.device_id)


@then("the device's next heartbeat on the same connection is refused with 403")
def _refused(ctx: dict[str, Any]) -> None:
    response = ctx["http"].post("/v1/device/heartbeat", json={})
    common.status_is(response.status_code, 403, "the un-deployed device's next heartbeat")


@given(parsers.parse('a device enrolled in DM region "{region}"'), target_fixture="device")
def _enrolled_elsewhere(stack: Stack, tmp_path: Path, region: str) -> DeviceCredential:
    admin = _admin(stack, region)
    device = _device(tmp_path)
    admin.deploy(device.mac, device.serial_number, device.model, admin.create_site("Site", "UTC"))
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    assert device.enroll(url, ca).status_code == 201
    with device.client(url, ca) as http:
        assert http.post("/v1/device/heartbeat", json={}).status_code == 200
    return device


@then(parsers.parse('region "{region}" refuses the device\'s certificate at the handshake'))
def _foreign_refused(stack: Stack, device: DeviceCredential, region: str) -> None:
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    answered: int | None = None
    try:
        with device.client(url, ca) as http:
            answered = http.post("/v1/device/heartbeat", json={}).status_code
    except (ssl.SSLError, httpx.TransportError):
        answered = None
    dm.refused_at_handshake(answered, region)


@when(parsers.parse('the device sends telemetry with the field "{field}"'))
def _send_field(ctx: dict[str, Any], field: str) -> None:
    ctx["response"] = ctx["http"].post(
        "/v1/device/telemetry", json={"status": "online", field: "Q3 numbers, see you at 10"}
    )


@then(parsers.parse('the answer is 422 naming the field "{field}"'))
def _named(ctx: dict[str, Any], field: str) -> None:
    response = ctx["response"]
    common.answer_names_field(response.status_code, _body(response), 422, field)


@when(
    parsers.parse(
        'the device sends telemetry with firmware version "{version}" and network type "{kind}"'
    )
)
def _send_good(ctx: dict[str, Any], version: str, kind: str) -> None:
    ctx["response"] = ctx["http"].post(
        "/v1/device/telemetry", json={"firmware_version": version, "network_type": kind}
    )


@then("the answer is 200")
def _ok(ctx: dict[str, Any]) -> None:
    common.status_is(ctx["response"].status_code, 200, f"the telemetry ({ctx['response'].text})")


@then(parsers.parse('the device list shows firmware version "{version}"'))
def _listed_version(ctx: dict[str, Any], device: DeviceCredential, version: str) -> None:
    dm.listed_with_firmware(ctx["admin"].devices(), str(device.device_id), version)


@given("two administrators registered with the same password")
def _two_admins(stack: Stack, ctx: dict[str, Any]) -> None:
    for _ in range(2):
        _admin(stack, ctx["region"]).close()


@then("every stored administrator password is an Argon2id hash")
def _hashes(stack: Stack, ctx: dict[str, Any]) -> None:
    engine = region_engine(stack, "dm", ctx["region"])
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT password_hash FROM administrators")).scalars().all()
    common.password_hashes(hashes, minimum=2)
    ctx["hashes"] = hashes


@then("the two hashes differ")
def _salted(ctx: dict[str, Any]) -> None:
    common.hashes_differ(ctx["hashes"])


@then(parsers.parse('the password text appears nowhere in the store of region "{region}"'))
def _no_plaintext(stack: Stack, region: str) -> None:
    engine = region_engine(stack, "dm", region)
    places: list[tuple[str, str | bytes]] = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                places.append((f"table {table}", " ".join(str(v) for v in row)))
    if not places:
        common.secret_nowhere(PASSWORD, [])  # fails: the store holds no rows to search
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        for path in Path(engine.url.database).parent.glob("store.sqlite3*"):
            places.append((str(path), path.read_bytes()))
    common.secret_nowhere(PASSWORD, places)
