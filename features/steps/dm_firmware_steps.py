"""Steps of features/dm_firmware.feature (MT-05, DM-05): real virtual room systems (the asyncio
driver, mutual TLS) take signed, encrypted firmware through the DM service's staged rollouts.

A fleet runs on an event loop of its own in a background thread for the whole scenario, so the
devices answer their command channels while the steps, in the test's thread, act as the fleet's
administrator through the DM admin API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from pytest_bdd import given, parsers, then, when

from devices_virtual.agent.firmware import virtual_image
from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import FleetRun
from devices_virtual.models import get_model
from protocol.stack import Stack
from roomtrust.comply.checks import common
from roomtrust.comply.checks import firmware as checks
from roomtrust.harness.fleets import fleet_admin, fleet_scenario, start_fleet
from services.common import firmware
from services.dm.cli import parse_amount
from services.dm.client import DeviceCredential, DmAdmin

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
WAIT_S = 90.0


class BackgroundFleet:
    """A fleet on an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run: FleetRun | None = None
        self.admin: DmAdmin | None = None
        self.region = "us"

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    @property
    def devices(self) -> list[VirtualDevice]:
        assert self.run is not None, "no fleet in this scenario"
        return self.run.fleets["rooms"].devices

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.run is not None:
            self.call(self.run.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def fw() -> Iterator[dict[str, Any]]:
    """What a firmware scenario holds: its fleet, image, rollout and hand-made room system."""
    fleet = BackgroundFleet()
    state: dict[str, Any] = {"fleet": fleet}
    yield state
    if "rollout" in state:  # leave no active rollout behind on a shared stack
        admin = _admin(state)
        if admin.rollout(state["rollout"]["rollout_id"])["state"] in ("running", "paused"):
            admin.control_rollout(state["rollout"]["rollout_id"], "abort")
    fleet.close()
    if "admin" in state:
        state["admin"].close()


def _admin(fw: dict[str, Any]) -> DmAdmin:
    fleet: BackgroundFleet = fw["fleet"]
    return fleet.admin if fleet.admin is not None else fw["admin"]


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = WAIT_S) -> T:
    """What `fetch` gives once `done` holds for it, or at the timeout (the check then judges)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(0.3)


# -- fleets and images ---------------------------------------------------------------------------


@given(parsers.parse('a fleet of {count:d} "{model}" room systems online in DM region "{region}"'))
def _fleet(
    stack: Stack, fw: dict[str, Any], tmp_path: Path, count: int, model: str, region: str
) -> None:
    fleet: BackgroundFleet = fw["fleet"]
    fleet.region = region
    scenario = fleet_scenario(
        f"features-firmware-{secrets.token_hex(2)}", {model: count}, region=region
    )
    fleet.run = fleet.call(start_fleet(stack, tmp_path, scenario))
    fleet.admin = fleet_admin(fleet.run)
    fw["model"] = model
    fw["factory"] = get_model(model).firmware_version
    assert {d.agent.firmware_version for d in fleet.devices} == {fw["factory"]}


@when(parsers.parse('the administrator uploads a "{behaviour}" image "{version}"'))
def _upload(fw: dict[str, Any], behaviour: str, version: str) -> None:
    self_test = {"healthy": "pass", "failing": "fail"}[behaviour]
    image = virtual_image(fw["model"], version, self_test=self_test)
    fw["image"] = _admin(fw).upload_image(fw["model"], version, image)
    fw["version"] = version


@when("its signature is tampered with in the region's object store")
def _tamper(stack: Stack, fw: dict[str, Any]) -> None:
    region = fw["fleet"].region
    path = stack.home / "dm" / region / "objects" / "firmware"
    blob = path / f"{fw['image']['image_id']}.rtfw"
    signed = firmware.unpack(blob.read_bytes())
    forged = bytes([signed.signature[0] ^ 0x80]) + signed.signature[1:]
    blob.write_bytes(firmware.pack(firmware.SignedImage(signed.manifest, forged, signed.image)))


@when(
    parsers.parse(
        'the administrator rolls it out in waves of "{waves}" with an error threshold of "{limit}"'
    )
)
def _roll_out(fw: dict[str, Any], waves: str, limit: str) -> None:
    admin = _admin(fw)
    rollout = admin.create_rollout(
        fw["image"]["image_id"],
        waves=[parse_amount(w.strip(), "waves") for w in waves.split(",")],
        error_threshold=parse_amount(limit, "threshold"),
        alert_window_minutes=0,
    )
    fw["rollout"] = admin.control_rollout(rollout["rollout_id"], "start")


def _status(fw: dict[str, Any]) -> dict[str, Any]:
    return _admin(fw).rollout(fw["rollout"]["rollout_id"])


def _slots(fw: dict[str, Any]) -> list[dict[str, Any]]:
    """What each device's agent holds: its running version, active slot and slots."""
    return [
        {
            "device": str(d.agent.device_id),
            "version": d.agent.firmware_version,
            "active": d.agent.firmware.active,
            "slots": list(d.agent.firmware.slots),
        }
        for d in fw["fleet"].devices
    ]


def _listed(fw: dict[str, Any]) -> dict[str, str | None]:
    """The DM service's device list: device id -> firmware version."""
    return {d["device_id"]: d["firmware_version"] for d in _admin(fw).devices()}


# -- outcomes ------------------------------------------------------------------------------------


@then(parsers.parse('the rollout completes with waves of sizes "{sizes}"'))
def _completed(fw: dict[str, Any], sizes: str) -> None:
    status = _poll(lambda: _status(fw), lambda s: s["state"] != "running")
    steps = [
        (e["action"], e["detail"].get("wave"))
        for e in reversed(_admin(fw).oplog())
        if e["target"] == status["rollout_id"] and e["action"].startswith("rollout.wave")
    ]
    checks.rollout_completed_in_waves(status, [int(n) for n in sizes.split(",")], steps)


@then(parsers.parse('every room system runs "{version}" from its second slot'))
def _second_slot(fw: dict[str, Any], version: str) -> None:
    checks.runs_from_second_slot(_slots(fw), fw["factory"], version)


@then(parsers.parse('the DM service lists every room system with firmware "{version}"'))
def _listed_with(fw: dict[str, Any], version: str) -> None:
    ids = {str(d.agent.device_id) for d in fw["fleet"].devices}
    listed = _poll(lambda: _listed(fw), lambda got: {got.get(i) for i in ids} == {version})
    checks.fleet_listed_with(listed, ids, version)


def _results(fw: dict[str, Any]) -> list[dict[str, Any]]:
    """What each device reported on its (one) firmware command."""
    return [r for d in fw["fleet"].devices for r in d.agent.firmware.reports.values()]


@then(parsers.parse('every room system refuses the image as "{reason}"'))
def _refused(fw: dict[str, Any], reason: str) -> None:
    count = len(fw["fleet"].devices)
    _poll(lambda: _status(fw), lambda s: s["totals"]["failed"] == count)
    failures = [e for e in _admin(fw).oplog() if e["action"] == "rollout.device_failed"]
    checks.refused_everywhere(
        _results(fw),
        [str(d.agent.device_id) for d in fw["fleet"].devices],
        [e["target"] for e in failures],
        reason,
    )


@then("the rollout is paused at its error threshold")
def _paused(fw: dict[str, Any]) -> None:
    checks.paused_at_threshold(_poll(lambda: _status(fw), lambda s: s["state"] == "paused"))


@then("no room system left its version")
def _kept(fw: dict[str, Any]) -> None:
    checks.kept_version(_slots(fw), _listed(fw), fw["factory"])


@then(parsers.parse('every room system reports "{reason}" and runs its previous version again'))
def _rolled_back(fw: dict[str, Any], reason: str) -> None:
    count = len(fw["fleet"].devices)
    _poll(lambda: _status(fw), lambda s: s["totals"]["failed"] == count)
    checks.rolled_back(_results(fw), _slots(fw), reason, fw["version"], fw["factory"])


# -- one room system by hand: the encrypted download ------------------------------------------------


def _body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _ws(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


def _hand_device(
    stack: Stack, admin: DmAdmin, site: str, tmp_path: Path, version: str
) -> DeviceCredential:
    endpoint = stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
    device = DeviceCredential(
        mac, f"SN{secrets.token_hex(4)}", "MeetingBoard 86", tmp_path / "keys"
    )
    admin.deploy(device.mac, device.serial_number, device.model, site)
    assert device.enroll(url, ca).status_code == 201
    with device.client(url, ca) as http:
        beat = http.post(
            "/v1/device/heartbeat", json={"status": "online", "firmware_version": version}
        )
    assert beat.status_code == 200
    return device


@given(
    parsers.parse(
        'a room system in DM region "{region}" enrolled with its own certificate, on "{version}"'
    )
)
def _enrolled_by_hand(
    stack: Stack, fw: dict[str, Any], tmp_path: Path, region: str, version: str
) -> None:
    endpoint = stack.endpoint("dm", region)
    url, ca = endpoint.url, endpoint.ca_file
    admin = DmAdmin(url, ca)
    email = f"fw-{secrets.token_hex(4)}@example.com"
    admin.register("Firmware QA", email, PASSWORD)
    admin.login(email, PASSWORD)
    fw["admin"], fw["url"], fw["ca"] = admin, url, ca
    site = admin.create_site("Lab", "UTC")
    fw["device"] = _hand_device(stack, admin, site, tmp_path, version)
    fw["other"] = _hand_device(stack, admin, site, tmp_path, version)
    fw["factory"] = version


@when(parsers.parse('its administrator rolls out a "{model}" image "{version}" to it'))
def _roll_out_to_one(fw: dict[str, Any], model: str, version: str) -> None:
    marker = b"CLEAR-IMAGE-MARKER-" + secrets.token_hex(8).encode()
    fw["plain"] = virtual_image(model, version) + marker
    fw["marker"] = marker
    fw["image"] = fw["admin"].upload_image(model, version, fw["plain"])
    rollout = fw["admin"].create_rollout(
        fw["image"]["image_id"], waves=[{"percent": 100}], error_threshold={"count": 2}
    )
    fw["rollout"] = fw["admin"].control_rollout(rollout["rollout_id"], "start")


@then("the room system receives its firmware command over its command channel")
def _command(fw: dict[str, Any]) -> None:
    device: DeviceCredential = fw["device"]

    async def receive() -> dict[str, Any] | None:
        async with websockets.connect(_ws(fw["url"]), ssl=device.ssl_context(fw["ca"])) as ws:
            try:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except TimeoutError:
                return None
            return message

    command = asyncio.run(receive())
    checks.install_command(command)
    assert command is not None
    fw["command"] = command["payload"]


@then("the download it fetches with its certificate does not hold the image in the clear")
def _ciphertext(fw: dict[str, Any]) -> None:
    with fw["device"].client(fw["url"], fw["ca"]) as http:
        response = http.get(fw["command"]["download"])
    fw["ciphertext"] = response.content
    checks.download_is_ciphertext(response.status_code, response.content, fw["marker"], fw["plain"])


@then("the key from the command decrypts it to an image signed with the region's release key")
def _decrypts(fw: dict[str, Any]) -> None:
    download_id = fw["command"]["download"].rsplit("/", 1)[-1]
    checks.decrypts_to_signed_image(
        fw["ciphertext"],
        key=base64.b64decode(fw["command"]["key"]),
        context=download_id.encode(),
        release_key_pem=fw["admin"].release_key().encode(),
        model="MeetingBoard 86",
        installed_version=fw["factory"],
        plain=fw["plain"],
    )


@then("another room system's certificate cannot fetch that download")
def _not_for_others(fw: dict[str, Any]) -> None:
    with fw["other"].client(fw["url"], fw["ca"]) as http:
        response = http.get(fw["command"]["download"])
    common.answer_names_field(response.status_code, _body(response), 404, "download_id")
