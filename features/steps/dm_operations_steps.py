"""Steps of features/dm_operations.feature (DM-05, DM-08, DM-13)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import websockets
from pytest_bdd import given, parsers, then, when

from features.steps.dm_steps import _admin, _device
from protocol.stack import Stack
from roomtrust.comply.checks import common, dm_operations
from services.dm.client import DeviceCredential


def _ws(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


async def _collect(
    device: DeviceCredential, url: str, ca: Path, wait: float, ack: bool
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with websockets.connect(_ws(url), ssl=device.ssl_context(ca)) as ws:
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=wait))
                got.append(message)
                if ack:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "ack",
                                "command_id": message["command_id"],
                                "result": {"applied": True},
                            }
                        )
                    )
        except TimeoutError:
            pass
    return got


@when(parsers.parse('the device reports a "{component}" fault'))
def _fault(ctx: dict[str, Any], component: str) -> None:
    response = ctx["http"].post(
        "/v1/device/health", json={"component": component, "state": "fault"}
    )
    assert response.status_code == 200


@then(parsers.parse('an active "{severity}" alert for the device\'s "{component}" is listed'))
def _alert_listed(
    ctx: dict[str, Any], device: DeviceCredential, severity: str, component: str
) -> None:
    mine = [a for a in ctx["admin"].alerts("active") if a["device_id"] == device.device_id]
    dm_operations.active_alert(mine, severity, component)
    ctx["alert"] = mine[0]


@then("the administrator can acknowledge and then clear it")
def _ack_clear(ctx: dict[str, Any]) -> None:
    alert_id = ctx["alert"]["alert_id"]
    http = ctx["admin"].http
    acknowledged = http.post(f"/v1/alerts/{alert_id}/acknowledge").json().get("state")
    cleared = http.post(f"/v1/alerts/{alert_id}/clear").json().get("state")
    dm_operations.acknowledged_then_cleared(acknowledged, cleared)


@then("the operation log records both steps")
def _logged(ctx: dict[str, Any]) -> None:
    target = str(ctx["alert"]["alert_id"])
    actions = {e["action"] for e in ctx["admin"].oplog() if e["target"] == target}
    dm_operations.oplog_records(actions, {"alert.acknowledged", "alert.cleared"})


@given(
    parsers.parse(
        "{here:d} enrolled devices at the site and {there:d} enrolled device at another site"
    )
)
def _spread(stack: Stack, ctx: dict[str, Any], tmp_path: Path, here: int, there: int) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    other = ctx["admin"].create_site(f"Other-{secrets.token_hex(2)}", "UTC")
    ctx["here"], ctx["there"] = [], []
    for site, count, bucket in ((ctx["site"], here, "here"), (other, there, "there")):
        for _ in range(count):
            device = _device(tmp_path, "MeetingBar A20")
            device.device_id = ctx["admin"].deploy(
                device.mac, device.serial_number, device.model, site
            )
            assert device.enroll(url, ca).status_code == 201
            ctx[bucket].append(device)


@when(parsers.parse('the administrator pushes a profile setting "{key}" to {value:d} to the site'))
def _push(ctx: dict[str, Any], key: str, value: int) -> None:
    profile = ctx["admin"].create_profile(
        f"p-{secrets.token_hex(2)}", {key: value}, {"site_id": ctx["site"]}
    )
    ctx["pushed"] = ctx["admin"].push_profile(profile["profile_id"])
    ctx["version"] = f"{profile['name']}@{profile['version']}"


@then("every device at the site receives the profile and acknowledges its version")
def _received(stack: Stack, ctx: dict[str, Any]) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file

    async def run() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(_collect(d, url, ca, 1.5, True) for d in ctx["here"]))

    results = asyncio.run(run())
    received = {str(d.device_id): r for d, r in zip(ctx["here"], results, strict=True)}
    dm_operations.profile_delivered(
        [str(i) for i in ctx["pushed"]["device_ids"]], list(received), received, ctx["version"]
    )


@then("the device at the other site receives nothing")
def _nothing(stack: Stack, ctx: dict[str, Any]) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    received = {
        str(device.device_id): asyncio.run(_collect(device, url, ca, 1.0, False))
        for device in ctx["there"]
    }
    dm_operations.nothing_delivered(received)


@then("no device of the site drifts from the profile")
def _no_drift(ctx: dict[str, Any]) -> None:
    ids = {d.device_id for d in ctx["here"]}
    drift = ctx["admin"].http.get("/v1/config/drift").json()
    listed = {d["device_id"] for d in ctx["admin"].devices() if d["device_id"] in ids}
    dm_operations.no_drift(drift, ids, listed)


@when(parsers.parse('the administrator creates a profile with the key "{key}"'))
def _bad_profile(ctx: dict[str, Any], key: str) -> None:
    ctx["response"] = ctx["admin"].http.post(
        "/v1/config/profiles", json={"name": "x", "values": {key: "v"}, "target": {"tag": "t"}}
    )


@when("the administrator requests diagnostics from the device")
def _request_diag(stack: Stack, ctx: dict[str, Any], device: DeviceCredential) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    ctx["command"] = ctx["admin"].request_diagnostics(str(device.device_id))
    received = asyncio.run(_collect(device, url, ca, 1.0, False))
    assert [m["kind"] for m in received] == ["diagnostics"]


def _bundle(ctx: dict[str, Any], device: DeviceCredential) -> dict[str, Any]:
    return {
        "command_id": ctx["command"]["command_id"],
        "device_id": device.device_id,
        "mac": device.mac,
        "ip_address": "192.0.2.10",
        "logs": {"system.log": "camera ok"},
    }


@when(parsers.parse('the device uploads logs with an extra field "{field}"'))
def _upload_extra(ctx: dict[str, Any], device: DeviceCredential, field: str) -> None:
    ctx["response"] = ctx["http"].post(
        "/v1/device/diagnostics", json={**_bundle(ctx, device), field: "data"}
    )


@when("the device uploads only its ID, MAC, IP address and logs")
def _upload(ctx: dict[str, Any], device: DeviceCredential) -> None:
    response = ctx["http"].post("/v1/device/diagnostics", json=_bundle(ctx, device))
    assert response.status_code == 201, response.text
    ctx["bundle_id"] = response.json()["bundle_id"]


@then("the administrator can download the bundle")
def _download(ctx: dict[str, Any]) -> None:
    bundle = json.loads(ctx["admin"].fetch_diagnostics(ctx["bundle_id"]))
    dm_operations.diagnosis_fields_only(bundle)


@then("an administrator of another enterprise cannot")
def _other_cannot(stack: Stack, ctx: dict[str, Any]) -> None:
    other = _admin(stack, ctx["region"])
    try:
        status = other.http.get(f"/v1/diagnostics/{ctx['bundle_id']}").status_code
        common.status_is(status, 404, "another enterprise fetching the bundle")
    finally:
        other.close()
