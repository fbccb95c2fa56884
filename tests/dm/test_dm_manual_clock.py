"""DM behaviour that depends on time, against a DM region served in the test process with a clock
the test moves (`manual_region`): real TLS, a real store, real virtual devices.

- A rollout with a maintenance window updates each site only inside the window, read in the
  site's own time zone (DM-05).
- A diagnostics bundle is downloadable by its enterprise's administrators only, and is gone after
  180 days (DM-05, DM-08).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import websockets

from devices_virtual.agent.firmware import virtual_image
from devices_virtual.models import get_model
from roomtrust.harness.fleets import (
    devices,
    fleet_admin,
    fleet_scenario,
    in_thread,
    start_fleet,
    wait_until,
)
from services.common.clock import utcnow
from services.dm.client import DeviceCredential, DmAdmin
from tests.dm.conftest import ManualRegion

MODEL = "DeskVision A24"
FACTORY = get_model(MODEL).firmware_version
NEW = "291.411.0.0"
WINDOW = {"start": "02:00", "end": "04:00"}
SITES = [
    {"name": "Tokyo", "time_zone": "Asia/Tokyo"},
    {"name": "Berlin", "time_zone": "Europe/Berlin"},
]


def last_utc_hour(hour: int) -> dt.datetime:
    """The latest past moment that was `hour`:00 UTC (certificates must not start in the
    future, so the test's clock starts in the past)."""
    now = utcnow()
    start = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return start if start <= now else start - dt.timedelta(days=1)


def next_local(after: dt.datetime, time_zone: str, local: dt.time) -> dt.datetime:
    """The first moment after `after` at which the wall clock in `time_zone` shows `local`."""
    zone = ZoneInfo(time_zone)
    day = after.astimezone(zone).date()
    while True:
        moment = dt.datetime.combine(day, local, tzinfo=zone).astimezone(dt.UTC)
        if moment > after:
            return moment
        day += dt.timedelta(days=1)


def test_a_device_outside_its_sites_maintenance_window_is_updated_only_when_it_opens(
    manual_region: ManualRegion, tmp_path: Path
) -> None:
    start = last_utc_hour(14)  # 23:00 in Tokyo, 15:00 or 16:00 in Berlin: both windows closed
    tokyo_opens = next_local(start, "Asia/Tokyo", dt.time(2, 30))  # start + 3.5 h
    berlin_opens = next_local(start, "Europe/Berlin", dt.time(2, 30))  # start + 10.5 or 11.5 h
    assert tokyo_opens < berlin_opens < start + dt.timedelta(hours=12)  # one admin session
    manual_region.clock.set(start)

    async def scenario() -> dict[str, Any]:
        run = await start_fleet(
            manual_region.stack(), tmp_path, fleet_scenario("windows", {MODEL: 4}, SITES)
        )
        admin = fleet_admin(run)
        by_site = {
            s["name"]: s["site_id"]
            for s in await in_thread(lambda: admin.http.get("/v1/sites").json())
        }
        site_of = {d["device_id"]: d["site_id"] for d in await in_thread(admin.devices)}
        tokyo = [d for d in devices(run) if site_of[str(d.agent.device_id)] == by_site["Tokyo"]]
        berlin = [d for d in devices(run) if site_of[str(d.agent.device_id)] == by_site["Berlin"]]
        assert len(tokyo) == len(berlin) == 2
        seen: dict[str, Any] = {}
        try:
            image = await in_thread(admin.upload_image, MODEL, NEW, virtual_image(MODEL, NEW))
            rollout = await in_thread(
                admin.create_rollout,
                image["image_id"],
                waves=[{"percent": 100}],
                windows=[WINDOW],
                alert_window_minutes=0,
            )
            rollout_id = rollout["rollout_id"]
            await in_thread(admin.control_rollout, rollout_id, "start")
            await asyncio.sleep(3)  # three ticks of the service with every window closed
            seen["closed"] = await in_thread(admin.rollout, rollout_id)
            seen["closed_versions"] = [d.agent.firmware_version for d in devices(run)]

            def updated(count: int) -> Callable[[], dict[str, Any] | None]:
                def check() -> dict[str, Any] | None:
                    status = admin.rollout(rollout_id)
                    return status if status["totals"]["updated"] == count else None

                return check

            manual_region.clock.set(tokyo_opens)
            seen["tokyo"] = await wait_until(updated(2), 60, "the Tokyo devices to update")
            await asyncio.sleep(2)  # more ticks: Berlin's window is still closed
            seen["tokyo_later"] = await in_thread(admin.rollout, rollout_id)
            seen["berlin_while_tokyo"] = [d.agent.firmware_version for d in berlin]
            manual_region.clock.set(berlin_opens)
            await wait_until(updated(4), 60, "the Berlin devices to update")
            manual_region.clock.advance(dt.timedelta(minutes=1))  # past the (zero) alert window

            def completed() -> dict[str, Any] | None:
                status = admin.rollout(rollout_id)
                return status if status["state"] != "running" else None

            seen["all"] = await wait_until(completed, 30, "the rollout to complete")
            seen["log"] = await in_thread(admin.oplog, 200)
        finally:
            await run.close()
            admin.close()
        seen["tokyo_ids"] = {str(d.agent.device_id) for d in tokyo}
        seen["berlin_ids"] = {str(d.agent.device_id) for d in berlin}
        seen["final_versions"] = [d.agent.firmware_version for d in devices(run)]
        return seen

    seen = asyncio.run(scenario())
    closed = seen["closed"]
    assert closed["state"] == "running"
    assert closed["totals"] == {
        "size": 4,
        "waiting": 4,
        "in_progress": 0,
        "updated": 0,
        "failed": 0,
    }
    assert seen["closed_versions"] == [FACTORY] * 4
    assert seen["tokyo_later"]["totals"]["waiting"] == 2  # Berlin still waits for its window
    assert seen["berlin_while_tokyo"] == [FACTORY] * 2
    assert seen["all"]["state"] == "completed"
    assert seen["final_versions"] == [NEW] * 4
    starts = {
        e["target"]: dt.datetime.fromisoformat(e["at"])
        for e in seen["log"]
        if e["action"] == "rollout.device_start"
    }
    assert set(starts) == seen["tokyo_ids"] | seen["berlin_ids"]
    for device_id, at in starts.items():
        opened = tokyo_opens if device_id in seen["tokyo_ids"] else berlin_opens
        assert opened <= at.astimezone(dt.UTC) < opened + dt.timedelta(minutes=1)


def ws_url(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


def test_a_diagnostics_bundle_is_for_its_enterprise_only_and_gone_after_180_days(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential]
) -> None:
    url, ca = manual_region.url, manual_region.ca_file
    password = "correct horse battery"
    with DmAdmin(url, ca) as admin, DmAdmin(url, ca) as other:
        admin.register("Diag Corp", "diag@example.com", password)
        admin.login("diag@example.com", password)
        other.register("Other Corp", "other@example.com", password)
        other.login("other@example.com", password)
        site = admin.create_site("HQ", "UTC")
        device = make_device("MeetingBoard 65")
        admin.deploy(device.mac, device.serial_number, device.model, site)
        assert device.enroll(url, ca).status_code == 201
        command = admin.request_diagnostics(str(device.device_id))

        async def take_command() -> dict[str, Any]:
            async with websockets.connect(ws_url(url), ssl=device.ssl_context(ca)) as ws:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
                return message

        assert asyncio.run(take_command())["command_id"] == command["command_id"]
        bundle = {
            "command_id": command["command_id"],
            "device_id": device.device_id,
            "mac": device.mac,
            "ip_address": "192.0.2.7",
            "logs": {"system.log": "display ok"},
        }
        with device.client(url, ca) as http:
            uploaded = http.post("/v1/device/diagnostics", json=bundle)
        assert uploaded.status_code == 201, uploaded.text
        bundle_id = uploaded.json()["bundle_id"]
        objects = manual_region.runtime.directory / "objects" / "diagnostics"
        assert (objects / f"{bundle_id}.json").exists()

        assert json.loads(admin.fetch_diagnostics(bundle_id))["logs"] == bundle["logs"]
        assert other.http.get(f"/v1/diagnostics/{bundle_id}").status_code == 404
        assert bundle_id not in {b["bundle_id"] for b in other.http.get("/v1/diagnostics").json()}

        manual_region.clock.advance(dt.timedelta(days=179))
        time.sleep(1)  # five sweeps of the retention job at day 179
        admin.login("diag@example.com", password)  # the old session has expired
        assert json.loads(admin.fetch_diagnostics(bundle_id))["device_id"] == device.device_id

        manual_region.clock.advance(dt.timedelta(days=1, minutes=1))
        admin.login("diag@example.com", password)
        deadline = time.monotonic() + 10
        while admin.http.get(f"/v1/diagnostics/{bundle_id}").status_code != 404:
            assert time.monotonic() < deadline, "the bundle outlived 180 days"
            time.sleep(0.2)
        assert admin.http.get("/v1/diagnostics").json() == []
        assert not (objects / f"{bundle_id}.json").exists()
