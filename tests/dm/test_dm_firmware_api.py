"""The firmware catalogue and rollout API of a live DM region (DM-05, MT-05): uploads are signed with
a release key kept apart from the region CA, every download is encrypted under a key of its own
that travels in the device's mTLS command channel, bad input gets `{error, field, reason}` and
changes nothing, and no enterprise sees another's images or rollouts. Also `roomtrust rollout`."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from devices_virtual.agent.firmware import virtual_image
from protocol.stack import Stack
from roomtrust.cli import app
from services.common import firmware
from services.common.tls import client_context
from services.dm.client import DeviceCredential, DmAdmin

MODEL = "MeetingBoard 86"
OLD = "273.410.0.3"
PASSWORD = "correct horse battery"


def ws_url(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


def version() -> str:
    return f"273.{secrets.randbelow(10**6) + 500}.0.0"


def enrolled(
    admin: DmAdmin, make_device: Callable[..., DeviceCredential], url: str, ca: Path
) -> DeviceCredential:
    """A deployed, enrolled device that has reported its firmware version."""
    device = make_device(MODEL)
    admin.deploy(device.mac, device.serial_number, MODEL, admin.site_id)  # type: ignore[attr-defined]
    assert device.enroll(url, ca).status_code == 201
    with device.client(url, ca) as http:
        beat = http.post("/v1/device/heartbeat", json={"status": "online", "firmware_version": OLD})
    assert beat.status_code == 200, beat.text
    return device


async def first_command(device: DeviceCredential, url: str, ca: Path) -> dict[str, Any]:
    async with websockets.connect(ws_url(url), ssl=device.ssl_context(ca)) as ws:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return message


async def ack(device: DeviceCredential, url: str, ca: Path, result: dict[str, Any]) -> None:
    async with websockets.connect(ws_url(url), ssl=device.ssl_context(ca)) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))  # delivered again
        reply = {"type": "ack", "command_id": message["command_id"], "result": result}
        await ws.send(json.dumps(reply))
        await asyncio.sleep(0.3)


def refused(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "field", "reason"} and body["reason"]
    assert body["field"] == field


# -- the catalogue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "body", "field"),
    [
        ({"version": "1.0"}, b"x", "model"),
        ({"model": "MeetingPhone Z1", "version": "1.0"}, b"x", "model"),
        ({"model": MODEL}, b"x", "version"),
        ({"model": MODEL, "version": "latest"}, b"x", "version"),
        ({"model": MODEL, "version": "1.0"}, b"", "image"),
    ],
)
def test_a_bad_upload_names_its_field_and_adds_nothing(
    dm_admin: DmAdmin, params: dict[str, str], body: bytes, field: str
) -> None:
    response = dm_admin.http.post("/v1/firmware/images", params=params, content=body)
    refused(response, 422, field)
    assert dm_admin.images() == []


def test_an_upload_is_signed_with_a_release_key_kept_apart_from_the_region_ca(
    live_stack: Stack, dm_admin: DmAdmin
) -> None:
    image = virtual_image(MODEL, "273.411.0.0")
    stored = dm_admin.upload_image(MODEL, "273.411.0.0", image)
    assert stored["sha256"] == hashlib.sha256(image).hexdigest() and stored["size"] == len(image)
    again = dm_admin.http.post(
        "/v1/firmware/images", params={"model": MODEL, "version": "273.411.0.0"}, content=image
    )
    refused(again, 409, "version")
    region = live_stack.home / "dm" / "us"
    key_file = region / "release" / firmware.RELEASE_KEY_FILE
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    assert not (region / "ca" / firmware.RELEASE_KEY_FILE).exists()
    assert not (region / "release" / "ca.key").exists()
    published = firmware.load_public_key(dm_admin.release_key().encode())
    assert firmware.public_key_pem(published) == firmware.public_key_pem(key)
    package = (region / "objects" / "firmware" / f"{stored['image_id']}.rtfw").read_bytes()
    signed = firmware.verify_package(package, published, model=MODEL, installed_version=OLD)
    assert signed.image == image


def test_no_enterprise_sees_or_uses_anothers_images_and_rollouts(
    live_stack: Stack, dm_admin: DmAdmin
) -> None:
    mine = dm_admin.upload_image(MODEL, version(), virtual_image(MODEL, "1"))
    rollout = dm_admin.create_rollout(mine["image_id"], waves=[{"percent": 100}])
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with DmAdmin(url, ca) as other:
        email = f"other-{secrets.token_hex(3)}@example.com"
        other.register("Other Corp", email, PASSWORD)
        other.login(email, PASSWORD)
        assert other.images() == [] and other.rollouts() == []
        use = other.http.post("/v1/rollouts", json={"image_id": mine["image_id"], "waves": []})
        refused(use, 404, "image_id")
        refused(other.http.get(f"/v1/rollouts/{rollout['rollout_id']}"), 404, "rollout_id")
        refused(other.http.post(f"/v1/rollouts/{rollout['rollout_id']}/start"), 404, "rollout_id")
    assert dm_admin.rollout(rollout["rollout_id"])["state"] == "created"


def test_bad_rollout_requests_name_their_field_and_change_nothing(dm_admin: DmAdmin) -> None:
    image = dm_admin.upload_image(MODEL, version(), virtual_image(MODEL, "1"))
    cases = [
        ({"image_id": image["image_id"]}, "waves"),
        ({"image_id": image["image_id"], "waves": [{"percent": 150}]}, "waves[0].percent"),
        ({"image_id": image["image_id"], "waves": [{"count": 1}], "start": True}, "start"),
        (
            {"image_id": image["image_id"], "waves": [{"count": 1}], "download_cap": "5"},
            "download_cap",
        ),
    ]
    for body, field in cases:
        refused(dm_admin.http.post("/v1/rollouts", json=body), 422, field)
    refused(dm_admin.http.post("/v1/rollouts", content=b"[1, 2]"), 422, None)
    assert dm_admin.rollouts() == []
    rollout = dm_admin.create_rollout(image["image_id"], waves=[{"count": 1}])
    refused(dm_admin.http.post(f"/v1/rollouts/{rollout['rollout_id']}/pause"), 409, "state")
    refused(dm_admin.http.post(f"/v1/rollouts/{rollout['rollout_id']}/explode"), 422, "op")
    assert dm_admin.rollout(rollout["rollout_id"])["state"] == "created"


# -- the per-download key ----------------------------------------------------------------------------


def test_a_download_is_encrypted_under_a_key_that_only_the_command_channel_carries(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    device = enrolled(dm_admin, make_device, url, ca)
    stranger = enrolled(dm_admin, make_device, url, ca)
    new = version()
    marker = b"PLAINTEXT-MARKER-" + secrets.token_hex(8).encode()
    image = virtual_image(MODEL, new) + marker
    stored = dm_admin.upload_image(MODEL, new, image)
    rollout = dm_admin.create_rollout(
        stored["image_id"],
        waves=[{"percent": 100}],
        target={"site_ids": [dm_admin.site_id]},  # type: ignore[attr-defined]
        error_threshold={"count": 5},
    )
    dm_admin.control_rollout(rollout["rollout_id"], "start")
    command = asyncio.run(first_command(device, url, ca))
    assert command["kind"] == "firmware"
    payload = command["payload"]
    assert payload["op"] == "install" and payload["version"] == new
    key = base64.b64decode(payload["key"])
    download_id = payload["download"].rsplit("/", 1)[-1]
    with device.client(url, ca) as http:
        fetched = http.get(payload["download"])
    assert fetched.status_code == 200
    assert marker not in fetched.content and image[:64] not in fetched.content
    package = firmware.decrypt_download(fetched.content, key, context=download_id.encode())
    published = firmware.load_public_key(dm_admin.release_key().encode())
    signed = firmware.verify_package(package, published, model=MODEL, installed_version=OLD)
    assert signed.image == image
    # another device's certificate, or none at all, gets nothing
    with stranger.client(url, ca) as http:
        refused(http.get(payload["download"]), 404, "download_id")
    with httpx.Client(base_url=url, verify=client_context(ca)) as anonymous:
        assert anonymous.get(payload["download"]).status_code == 401
    # once the device has reported, the key is gone and the download with it
    asyncio.run(ack(device, url, ca, {"ok": True, "version": new}))
    with device.client(url, ca) as http:
        refused(http.get(payload["download"]), 409, "download_id")
    status = dm_admin.rollout(rollout["rollout_id"])
    assert status["totals"]["updated"] == 1
    dm_admin.control_rollout(rollout["rollout_id"], "abort")  # the stranger never reports


# -- the command line --------------------------------------------------------------------------------


def _window_around_now(time_zone: str) -> str:
    """A maintenance window open now at the site, whatever the hour the suite runs."""
    local = dt.datetime.now(ZoneInfo(time_zone))
    opens, closes = local - dt.timedelta(hours=1), local + dt.timedelta(hours=6)
    return f"{opens:%H:%M}-{closes:%H:%M}"


def test_roomtrust_rollout_commands(
    live_stack: Stack, tmp_path: Path, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "eu")
    url, ca = endpoint.url, endpoint.ca_file
    email = f"cli-rollout-{secrets.token_hex(3)}@example.com"
    with DmAdmin(url, ca) as admin:
        admin.register("CLI Rollouts", email, PASSWORD)
        admin.login(email, PASSWORD)
        admin.site_id = admin.create_site("Oslo", "Europe/Oslo")  # type: ignore[attr-defined]
        enrolled(admin, make_device, url, ca)  # it never connects: its update stays in flight
    env = {"ROOMTRUST_ADMIN_EMAIL": email, "ROOMTRUST_ADMIN_PASSWORD": PASSWORD}
    common = ["--region", "eu", "--home", str(live_stack.home)]
    runner = CliRunner()
    image_file = tmp_path / "board.img"
    image_file.write_bytes(virtual_image(MODEL, "273.411.0.0"))

    def run(*args: str) -> str:
        result = runner.invoke(app, ["rollout", *args, *common], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    uploaded = run("upload", str(image_file), "--model", MODEL, "--version", "273.411.0.0")
    image_id = uploaded.split()[1].rstrip(":")
    assert "signed (Ed25519)" in uploaded
    assert image_id in run("images")
    created = run(
        "create",
        image_id,
        "--wave",
        "10%",
        "--wave",
        "100%",
        "--window",
        _window_around_now("Europe/Oslo"),
        "--error-threshold",
        "5%",
        "--download-cap",
        "20",
    )
    rollout_id = created.split()[1]
    assert "state: created" in created
    started = run("start", rollout_id)
    assert "state: running" in started
    assert "wave 1 [..............................] 0/1 updated, 0 failed, 1 in progress" in started
    assert "wave 2 [##############################] 0/0 updated" in started
    assert "state: paused (paused by" in run("pause", rollout_id)
    assert "state: running" in run("resume", rollout_id)
    assert "state: aborted (aborted by" in run("abort", rollout_id)
    assert f"rollout {rollout_id}" in run("status", rollout_id)
    bad_wave = runner.invoke(
        app, ["rollout", "create", image_id, "--wave", "lots", *common], env=env
    )
    assert bad_wave.exit_code == 2 and "--wave" in bad_wave.output
    bad_window = runner.invoke(
        app, ["rollout", "create", image_id, "--wave", "1", "--window", "2-4", *common], env=env
    )
    assert bad_window.exit_code == 2
    missing = runner.invoke(app, ["rollout", "status", "nope", *common], env=env)
    assert missing.exit_code == 1 and "rollout_id" in missing.output
    again = runner.invoke(app, ["rollout", "resume", rollout_id, *common], env=env)
    assert again.exit_code == 1 and "state" in again.output
