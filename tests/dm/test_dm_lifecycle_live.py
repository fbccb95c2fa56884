"""A device identity's lifecycle with real virtual devices (the asyncio driver) against a DM region
served in the test process with a clock the test moves (`manual_region`); the stand-in time
servers tell the devices that same clock.

- A device whose certificate is 30 days from its end (certificates last 31 days here) renews it by
  itself; once the new certificate is used, the old one is refused.
- An un-deployed device is deployed again by its administrator, and enrolls anew.
- A factory-reset device sends nothing but refused enrollment requests until an administrator
  deploys it again; then it enrolls with a new key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import FleetRun
from devices_virtual.scenario import Scenario, parse_scenario
from roomtrust.harness.fleets import devices, fleet_admin, in_thread, start_fleet, wait_until
from services.common.clock import utcnow
from services.common.tls import client_context
from services.dm.client import DmAdmin
from tests.dm.conftest import ManualRegion

MODEL = "MeetingBar A30"
LIFETIME_DAYS = 31


@pytest.fixture
def manual_settings() -> dict[str, object]:
    return {"device_certificate_days": LIFETIME_DAYS}


def one_device(name: str) -> Scenario:
    """One device; NTP every second (so a moved clock is seen at once), enrollment retried every
    half second or so, the rest slow."""
    return parse_scenario(
        {
            "name": name,
            "seeds": [11],
            "timing": {
                "heartbeat_s": 600,
                "telemetry_s": 3600,
                "ntp_interval_s": 1,
                "enroll_retry_s": 0.5,
                "boot_scale": 0,
            },
            "fleets": [
                {
                    "name": "rooms",
                    "dm_region": "us",
                    "sites": [{"name": "HQ", "time_zone": "UTC"}],
                    "models": {MODEL: 1},
                }
            ],
            "phases": [{"kind": "deploy"}, {"kind": "enroll"}],
        }
    )


def heartbeat(region: ManualRegion, cert: Path, key: Path) -> int:
    ctx = client_context(region.ca_file, cert, key)
    with httpx.Client(base_url=region.url, verify=ctx, timeout=10) as http:
        body = {"status": "online"}
        return http.post("/v1/device/heartbeat", json=body).status_code


def actions_in_log(admin: DmAdmin, device_id: str) -> list[str]:
    return [e["action"] for e in reversed(admin.oplog(500)) if e["target"] == device_id]


async def redeploy(run: FleetRun, admin: DmAdmin) -> str:
    spec = run.fleets["rooms"].specs[0]
    (site_id,) = run.fleets["rooms"].site_ids
    return await in_thread(admin.deploy, spec.mac, spec.serial_number, spec.model, site_id)


def online(device: VirtualDevice) -> Callable[[], bool | None]:
    return lambda: (device.agent.enrolled and device.agent.channel_open) or None


def test_a_certificate_30_days_from_its_end_is_renewed_and_the_old_one_is_then_refused(
    manual_region: ManualRegion, tmp_path: Path
) -> None:
    real = utcnow().replace(microsecond=0)
    manual_region.clock.set(real - dt.timedelta(days=1))  # enrolled a day ago: 31 days left

    def clock() -> float:
        return manual_region.clock.now().timestamp()

    async def scenario() -> dict[str, Any]:
        run = await start_fleet(manual_region.stack(), tmp_path, one_device("renew"), clock=clock)
        admin = fleet_admin(run)
        (device,) = devices(run)
        seen: dict[str, Any] = {}
        try:
            old_cert, old_key = tmp_path / "old.pem", tmp_path / "old.key"
            shutil.copy(device.keys.cert_file, old_cert)
            shutil.copy(device.keys.key_file, old_key)
            seen["not_after"] = device.agent.cert_not_after
            await asyncio.sleep(2.5)  # NTP twice: 31 days left, nothing to do
            seen["renewals_before"] = device.agent.renewals
            seen["old_before"] = await in_thread(heartbeat, manual_region, old_cert, old_key)

            manual_region.clock.set(real)  # a day on: 30 days left
            await wait_until(
                lambda: (device.agent.renewals == 1 and device.agent.channel_open) or None,
                20,
                "the device to renew its certificate",
            )
            device_id = str(device.agent.device_id)
            admin.close()
            admin = fleet_admin(run)  # the session of a day ago has expired
            await wait_until(
                lambda: "device.certificate_revoke" in actions_in_log(admin, device_id) or None,
                10,
                "the old certificate to be revoked by the new one's use",
            )
            seen["log"] = await in_thread(actions_in_log, admin, device_id)
            seen["old_after"] = await in_thread(heartbeat, manual_region, old_cert, old_key)
            seen["new"] = await in_thread(
                heartbeat, manual_region, device.keys.cert_file, device.keys.key_file
            )
            seen["new_not_after"] = device.agent.cert_not_after
            seen["same_key"] = old_key.read_bytes() == device.keys.key_file.read_bytes()
            seen["renewals_later"] = device.agent.renewals
        finally:
            await run.close()
            admin.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["renewals_before"] == 0 and seen["old_before"] == 200
    assert seen["log"].index("device.certificate_renew") < seen["log"].index(
        "device.certificate_revoke"
    )
    assert seen["old_after"] == 403, "the replaced certificate is still accepted"
    assert seen["new"] == 200
    assert not seen["same_key"], "the renewal kept the old key"
    assert seen["new_not_after"] - seen["not_after"] == pytest.approx(86400, abs=60)
    assert seen["renewals_later"] == 1  # 31 days left again: no second renewal


def test_an_undeployed_device_is_deployed_again_and_enrolls_anew(
    manual_region: ManualRegion, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        run = await start_fleet(manual_region.stack(), tmp_path, one_device("redeploy"))
        admin = fleet_admin(run)
        (device,) = devices(run)
        seen: dict[str, Any] = {}
        try:
            device_id = str(device.agent.device_id)
            await in_thread(admin.undeploy, device_id)
            await wait_until(
                lambda: device.stats["enroll:403"] >= 1 or None, 20, "a refused enrollment"
            )
            seen["status_undeployed"] = {d["device_id"]: d["status"] for d in admin.devices()}
            seen["redeployed_id"] = await redeploy(run, admin)
            await wait_until(online(device), 30, "the device to enroll again")
            seen["device_id"] = device.agent.device_id
            seen["devices"] = await in_thread(admin.devices)
            seen["log"] = await in_thread(actions_in_log, admin, device_id)
        finally:
            await run.close()
            admin.close()
        seen["original_id"] = device_id
        return seen

    seen = asyncio.run(scenario())
    device_id = seen["original_id"]
    assert seen["status_undeployed"][device_id] == "revoked"
    assert seen["redeployed_id"] == seen["device_id"] == device_id
    (row,) = seen["devices"]
    assert row["enrolled"] is True and row["status"] in ("deployed", "online")
    log = seen["log"]
    assert log.index("device.undeploy") < log.index("device.redeploy") < len(log) - 1
    assert log[-1] == "device.enroll"


def test_a_factory_reset_device_sends_nothing_until_it_is_deployed_again(
    manual_region: ManualRegion, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        run = await start_fleet(manual_region.stack(), tmp_path, one_device("reset"))
        admin = fleet_admin(run)
        (device,) = devices(run)
        seen: dict[str, Any] = {}
        try:
            device_id = str(device.agent.device_id)
            old_key = device.keys.key_file.read_bytes()
            seen["action"] = await in_thread(admin.device_action, device_id, "factory_reset")
            await wait_until(lambda: device.stats["factory_reset"] or None, 20, "the reset")
            assert run.io is not None
            reset_at = run.io.now()
            keys = device.keys
            seen["identity_left"] = [
                p.name for p in (keys.key_file, keys.csr_file, keys.cert_file) if p.exists()
            ]
            await wait_until(
                lambda: device.stats["enroll:403"] >= 3 or None, 30, "three refused enrollments"
            )
            seen["sent"] = [c.purpose for c in run.recorder.to_dm([device.name], reset_at)]
            seen["status"] = {d["device_id"]: d["status"] for d in admin.devices()}[device_id]

            seen["redeployed_id"] = await redeploy(run, admin)
            await wait_until(online(device), 30, "the device to enroll after the reset")
            seen["new_key_differs"] = device.keys.key_file.read_bytes() != old_key
            seen["log"] = await in_thread(actions_in_log, admin, device_id)
        finally:
            await run.close()
            admin.close()
        seen["device_id"] = device_id
        return seen

    seen = asyncio.run(scenario())
    # the device carrying out the reset (waited for above) is the delivery; on PostgreSQL the
    # command goes out through the replicas' fan-out, so `delivered_now` of the request is 0 there
    assert seen["action"]["devices"] == 1
    assert seen["identity_left"] == []
    assert seen["sent"] and set(seen["sent"]) == {"enroll"}, seen["sent"]
    assert seen["status"] == "reset"
    assert seen["redeployed_id"] == seen["device_id"]
    assert seen["new_key_differs"]
    log = seen["log"]
    for earlier, later in [
        ("device.factory_reset", "device.factory_reset_done"),
        ("device.factory_reset_done", "device.redeploy"),
        ("device.redeploy", "device.enroll"),
    ]:
        assert log.index(earlier) < len(log) - 1 - log[::-1].index(later), (earlier, later, log)
