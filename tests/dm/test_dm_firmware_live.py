"""Firmware rollouts with real virtual devices against the live local stack (DM-05, MT-05).

The devices run the asyncio driver: they enroll with their own certificates, keep their outbound
WSS command channel (mTLS), download their image over mTLS, decrypt it with the per-download key
from their command, verify it against the release key built into them, install it to the
inactive slot, reboot and report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices_virtual.agent import FaultInjected
from devices_virtual.agent.firmware import HEALTH_CHECK_FAILED, virtual_image
from devices_virtual.models import get_model
from protocol.stack import Stack
from roomtrust.harness.fleets import (
    device_ids,
    devices,
    fleet_admin,
    fleet_scenario,
    in_thread,
    start_fleet,
    wait_until,
)
from services.common import firmware

MODEL = "MeetingBar A30"
FACTORY = get_model(MODEL).firmware_version  # 266.410.0.5


def test_a_new_image_that_fails_its_health_check_rolls_back_by_itself(
    live_stack: Stack, tmp_path: Path
) -> None:
    async def scenario() -> None:
        run = await start_fleet(live_stack, tmp_path, fleet_scenario("rollback", {MODEL: 3}))
        admin = fleet_admin(run)
        try:
            broken = virtual_image(MODEL, "266.411.0.0", self_test="fail")
            image = await in_thread(admin.upload_image, MODEL, "266.411.0.0", broken)
            rollout = await in_thread(
                admin.create_rollout,
                image["image_id"],
                waves=[{"percent": 100}],
                error_threshold={"count": 3},
                alert_window_minutes=0,
            )
            rollout_id = rollout["rollout_id"]
            await in_thread(admin.control_rollout, rollout_id, "start")

            def all_reported() -> dict[str, Any] | None:
                status = admin.rollout(rollout_id)
                return status if status["totals"]["failed"] == 3 else None

            status = await wait_until(all_reported, 60, "every device to report")
        finally:
            await run.close()
        assert status["state"] == "paused"
        assert status["reason"] == "wave 1 reached its error threshold (3 of 3 failed)"
        by_id = device_ids(run)
        for device in devices(run):
            fw = device.agent.firmware
            # it booted the new slot, failed the check, and is back on the old slot by itself
            assert device.agent.firmware_version == FACTORY
            assert fw.slots == [FACTORY, "266.411.0.0"] and fw.active == 0
            (result,) = fw.reports.values()
            assert result["reason"] == HEALTH_CHECK_FAILED and result["rolled_back"] is True
            assert result["failed_version"] == "266.411.0.0"
        listed = {d["device_id"]: d for d in admin.devices()}
        assert {listed[i]["firmware_version"] for i in by_id} == {FACTORY}
        failures = [e for e in admin.oplog(1000) if e["action"] == "rollout.device_failed"]
        assert sorted(e["target"] for e in failures) == sorted(by_id)
        assert {e["detail"]["reason"] for e in failures} == {HEALTH_CHECK_FAILED}
        alerts = [a for a in admin.alerts("active") if a["component"] == "firmware_update"]
        assert sorted(a["device_id"] for a in alerts) == sorted(by_id)
        assert all(a["detail"].startswith(HEALTH_CHECK_FAILED) for a in alerts)
        admin.control_rollout(rollout_id, "abort")  # leave no active rollout behind
        admin.close()

    asyncio.run(scenario())


def test_an_alert_from_an_updated_device_within_the_alert_window_pauses_the_rollout(
    live_stack: Stack, tmp_path: Path
) -> None:
    """Health-gated rollouts: the first wave's device updates, then raises a camera fault; that
    counts as a failed update, so the rollout pauses and the second wave never starts."""

    async def scenario() -> dict[str, Any]:
        run = await start_fleet(live_stack, tmp_path, fleet_scenario("gated", {MODEL: 3}))
        admin = fleet_admin(run)
        try:
            image = await in_thread(
                admin.upload_image, MODEL, "266.412.0.0", virtual_image(MODEL, "266.412.0.0")
            )
            rollout = await in_thread(
                admin.create_rollout,
                image["image_id"],
                waves=[{"count": 1}, {"percent": 100}],
                alert_window_minutes=10,
            )
            rollout_id = rollout["rollout_id"]
            await in_thread(admin.control_rollout, rollout_id, "start")

            def first_updated() -> dict[str, Any] | None:
                status = admin.rollout(rollout_id)
                return status if status["totals"]["updated"] == 1 else None

            await wait_until(first_updated, 60, "the first device to update")
            (updated,) = [d for d in devices(run) if d.agent.firmware_version == "266.412.0.0"]
            updated.feed(FaultInjected(updated.io.now(), "camera", "no picture after update"))

            def paused() -> dict[str, Any] | None:
                status = admin.rollout(rollout_id)
                return status if status["state"] == "paused" else None

            status = await wait_until(paused, 30, "the rollout to pause")
            await asyncio.sleep(1.5)  # more ticks: nothing else starts
            later = await in_thread(admin.rollout, rollout_id)
            log = await in_thread(admin.oplog, 200)
            await in_thread(admin.control_rollout, rollout_id, "abort")  # leave none active
        finally:
            await run.close()
            admin.close()
        return {
            "status": status,
            "later": later,
            "log": log,
            "device": str(updated.agent.device_id),
        }

    seen = asyncio.run(scenario())
    assert seen["status"]["reason"] == "wave 1 reached its error threshold (1 of 1 failed)"
    assert seen["later"]["waves"][1]["waiting"] == 2 and seen["later"]["state"] == "paused"
    (failed,) = [e for e in seen["log"] if e["action"] == "rollout.device_failed"]
    assert failed["target"] == seen["device"]
    assert failed["detail"]["reason"] == "alert within 10 min after updating: fault camera"


FLEET = 300
BAR = "MeetingBar A20"
BAR_FACTORY = get_model(BAR).firmware_version  # 264.410.0.5
GOOD, PLANTED = "264.411.0.0", "264.412.0.0"
SITES = [
    {"name": "New York", "time_zone": "America/New_York"},
    {"name": "Berlin", "time_zone": "Europe/Berlin"},
    {"name": "Sydney", "time_zone": "Australia/Sydney"},
]


def plant_bad_signature(stack: Stack, image_id: str) -> None:
    """Flip one bit of the stored package's Ed25519 signature, as an attacker with write access
    to the object store would: the image and its manifest stay as they were."""
    path = stack.home / "dm" / "us" / "objects" / "firmware" / f"{image_id}.rtfw"
    signed = firmware.unpack(path.read_bytes())
    signature = bytes([signed.signature[0] ^ 0x01]) + signed.signature[1:]
    path.write_bytes(firmware.pack(firmware.SignedImage(signed.manifest, signature, signed.image)))


@pytest.mark.slow
def test_a_rollout_to_300_devices_completes_in_waves_and_a_planted_bad_signature_pauses_the_next(
    live_stack: Stack, tmp_path: Path
) -> None:
    """300 real virtual devices (mTLS), three waves; then an image whose
    signature was tampered with in the store: every device it reaches refuses it, the rollout
    pauses at its error threshold, and no device leaves its good version."""

    async def scenario() -> None:
        run = await start_fleet(
            live_stack, tmp_path, fleet_scenario("rollout-300", {BAR: FLEET}, SITES), timeout=180
        )
        admin = fleet_admin(run)
        try:
            image = await in_thread(admin.upload_image, BAR, GOOD, virtual_image(BAR, GOOD))
            rollout = await in_thread(
                admin.create_rollout,
                image["image_id"],
                waves=[{"percent": 10}, {"percent": 30}, {"percent": 100}],
                error_threshold={"percent": 5},
                alert_window_minutes=0,
                download_cap=50,
            )
            first = rollout["rollout_id"]
            await in_thread(admin.control_rollout, first, "start")

            def settled(rollout_id: str) -> Callable[[], dict[str, Any] | None]:
                def check() -> dict[str, Any] | None:
                    status = admin.rollout(rollout_id)
                    return status if status["state"] != "running" else None

                return check

            done = await wait_until(settled(first), 240, "the rollout to finish", interval=1)
            state["first"] = done
            state["first_log"] = await in_thread(admin.oplog, 1000)

            planted = await in_thread(admin.upload_image, BAR, PLANTED, virtual_image(BAR, PLANTED))
            plant_bad_signature(live_stack, planted["image_id"])
            rollout = await in_thread(
                admin.create_rollout,
                planted["image_id"],
                waves=[{"percent": 10}, {"percent": 100}],
                error_threshold={"percent": 20},
                alert_window_minutes=0,
            )
            second = rollout["rollout_id"]
            await in_thread(admin.control_rollout, second, "start")

            def wave_one_reported() -> dict[str, Any] | None:
                status = admin.rollout(second)
                return status if status["waves"][0]["failed"] == 30 else None

            state["second"] = await wait_until(wave_one_reported, 90, "wave 1 to report")
            state["second_log"] = await in_thread(admin.oplog, 1000)
            state["listed"] = await in_thread(admin.devices)
            await in_thread(admin.control_rollout, second, "abort")
        finally:
            await run.close()
            admin.close()
        state["run"] = run

    state: dict[str, Any] = {}
    asyncio.run(scenario())
    run = state["run"]
    fleet = device_ids(run)
    assert len(fleet) == FLEET

    # the good image: three waves, one after the other, every device updated
    first = state["first"]
    assert first["state"] == "completed", first
    assert [w["size"] for w in first["waves"]] == [30, 90, 180]
    assert [w["updated"] for w in first["waves"]] == [30, 90, 180]
    steps = [
        (e["action"], e["detail"].get("wave"))
        for e in reversed(state["first_log"])
        if e["target"] == first["rollout_id"]
    ]
    waves = [s for s in steps if s[0] in ("rollout.wave_start", "rollout.wave_done")]
    assert waves == [
        ("rollout.wave_start", "1"),
        ("rollout.wave_done", "1"),
        ("rollout.wave_start", "2"),
        ("rollout.wave_done", "2"),
        ("rollout.wave_start", "3"),
        ("rollout.wave_done", "3"),
    ]
    assert steps[-1][0] == "rollout.complete"

    # the planted image: refused by every device it reached, the rollout paused at its threshold
    second = state["second"]
    assert second["state"] == "paused"
    assert second["reason"] == "wave 1 reached its error threshold (6 of 30 failed)"
    assert second["waves"][1]["waiting"] == 270 and second["waves"][1]["in_progress"] == 0
    refusals = [
        e
        for e in state["second_log"]
        if e["action"] == "rollout.device_failed" and e["detail"]["rollout"] == second["rollout_id"]
    ]
    assert len(refusals) == 30
    assert {e["detail"]["reason"] for e in refusals} == {firmware.BAD_SIGNATURE}
    reached = {e["target"] for e in refusals}
    for device_id in reached:
        (result,) = [
            r
            for r in fleet[device_id].agent.firmware.reports.values()
            if r.get("reason") == firmware.BAD_SIGNATURE
        ]
        assert result["ok"] is False and result["version"] == GOOD

    # and not one device left its good version
    for device in fleet.values():
        fw = device.agent.firmware
        assert device.agent.firmware_version == GOOD
        assert fw.slots == [BAR_FACTORY, GOOD] and fw.active == 1
    listed = {d["device_id"]: d["firmware_version"] for d in state["listed"]}
    assert {listed[i] for i in fleet} == {GOOD}
