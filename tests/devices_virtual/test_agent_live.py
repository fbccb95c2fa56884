"""The device agent does what a room device does, against the live local stack (DM-13, DM-05).

Real virtual devices of every model (the asyncio driver, mutual TLS, their own command channels)
take a bulk configuration push and diagnostics requests from an administrator. The test acts only
as the administrator (the DM admin API) and as the network around the devices (the stand-ins): it
sends no device-protocol message. It reads the region's store only to see what the devices
acknowledged and reported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import FleetRun
from devices_virtual.models import CATALOGUE
from protocol.stack import Stack
from roomtrust.comply.checks import dm_operations
from roomtrust.harness.fleets import (
    fleet_admin,
    fleet_scenario,
    in_thread,
    start_fleet,
    wait_for_devices,
    wait_until,
)
from roomtrust.harness.stores import region_engine
from services.dm.domain.commands import queue_command
from services.dm.store.models import Device, DeviceCommand, TelemetryReading

NTP_HOST = "ntp.hq.example"
PROFILE = {
    "ntp.server": NTP_HOST,
    "network.proxy_test_enabled": True,
    "dm.heartbeat_s": 20,
    "dm.telemetry_s": 120,
    "log.level": "debug",
    "device.name": "HQ room",
}
SITES = [{"name": "HQ", "time_zone": "UTC"}, {"name": "Annex", "time_zone": "UTC"}]


def at_site(run: FleetRun, site: int) -> list[VirtualDevice]:
    state = run.fleets["rooms"]
    return [d for s, d in zip(state.specs, state.devices, strict=True) if s.site == site]


def store(stack: Stack) -> Session:
    return Session(region_engine(stack, "dm", "us"))


def queue_stale_profile(stack: Stack, device_id: str, values: dict[str, Any]) -> int:
    """A config command from an older schema still waiting in the region's queue (written straight
    into the store: the service no longer accepts such a profile)."""
    with store(stack) as session, session.begin():
        device = session.get(Device, device_id)
        assert device is not None
        payload = {"version": "legacy@1", "values": values}
        now = dt.datetime.now(dt.UTC)
        return queue_command(session, device, "config", payload, now).id


def command_results(stack: Stack, ids: list[int]) -> dict[int, Any]:
    with store(stack) as session:
        rows = session.scalars(select(DeviceCommand).where(DeviceCommand.id.in_(ids)))
        return {row.id: row.result for row in rows}


def last_reported(stack: Stack, device_ids: list[str]) -> dict[str, dict[str, str]]:
    with store(stack) as session:
        rows = session.scalars(
            select(TelemetryReading)
            .where(TelemetryReading.device_id.in_(device_ids))
            .order_by(TelemetryReading.id)
        )
        return {row.device_id: row.fields for row in rows}


def test_a_bulk_push_to_one_site_is_applied_and_acknowledged_by_every_agent_there(
    live_stack: Stack, tmp_path: Path
) -> None:
    # each model twice, spread over the two sites in turn: every model once at each site
    scenario = fleet_scenario("agent-config", dict.fromkeys(CATALOGUE, 2), sites=SITES)

    async def scenario_run() -> None:
        run = await start_fleet(live_stack, tmp_path, scenario)
        admin = fleet_admin(run)
        assert run.standins is not None and run.io is not None
        try:
            await run.standins.add_ntp_host(NTP_HOST)
            hq, annex = at_site(run, 0), at_site(run, 1)
            assert sorted(d.agent.identity.model.name for d in hq) == sorted(CATALOGUE)
            ids = [str(d.agent.device_id) for d in hq]
            stale = await in_thread(
                queue_stale_profile, live_stack, ids[0], {"audio.equalizer": "warm"}
            )
            served_before = run.standins.served[f"ntp {NTP_HOST}"]
            since = run.io.now()
            site_id = run.fleets["rooms"].site_ids[0]
            profile = await in_thread(admin.create_profile, "hq", PROFILE, {"site_id": site_id})
            version = f"hq@{profile['version']}"
            pushed = await in_thread(admin.push_profile, profile["profile_id"])
            assert sorted(pushed["device_ids"]) == sorted(ids)
            await wait_for_devices(
                lambda: all(d.agent.configuration_version == version for d in hq),
                30,
                "every device at HQ to apply the profile",
            )

            def settled() -> bool:
                drift = admin.http.get("/v1/config/drift").json()
                listed = {d["device_id"]: d for d in admin.devices()}
                reported = last_reported(live_stack, ids)
                return not [r for r in drift if r["device_id"] in ids] and all(
                    listed[i]["configuration_version"] == version
                    and reported[i].get("configuration_version") == version
                    for i in ids
                )

            # the acknowledgements and reports reached the region: no drift at the site
            await wait_until(settled, 30, "no drift at HQ")
            await wait_until(
                lambda: (
                    run.standins is not None
                    and run.standins.served[f"ntp {NTP_HOST}"] - served_before >= len(hq)
                ),
                20,
                "the pushed time server to answer every device",
            )
            reported = await in_thread(last_reported, live_stack, ids)
            # the driver's timers run at the pushed intervals (the fleet's own are 600 s and
            # 3600 s, the service's heartbeat hint 30 s)
            now = run.io.loop.time()
            due = {
                name: [d.timers[name].when - now for d in hq if name in d.timers]
                for name in ("heartbeat", "telemetry")
            }
            stale_result = (await in_thread(command_results, live_stack, [stale]))[stale]
        finally:
            await run.close()
            admin.close()

        # every agent at the site applied the profile (and acknowledged it: no drift above)
        for device in hq:
            assert device.agent.settings == PROFILE, device.agent.identity.model.name
        # the other site received nothing and applied nothing
        annex_macs = {d.name for d in annex}
        assert not [r for r in run.records if r["kind"] == "command" and r["device"] in annex_macs]
        assert {d.agent.configuration_version for d in annex} == {None}
        # behaviour changed: the next time query went to the pushed server, on the wire
        after = [c for c in run.recorder.of({d.name for d in hq}) if c.at >= since]
        ntp_hosts = {(c.device, c.host) for c in after if c.protocol == "ntp"}
        assert ntp_hosts == {(d.name, NTP_HOST) for d in hq}
        assert not [c for c in run.recorder.of(annex_macs) if c.at >= since]
        # the proxy test switch took effect: each device reached the proxy test site
        assert sorted(c.device for c in after if c.target == "proxy_test") == sorted(
            d.name for d in hq
        )
        # the intervals, the log level and the name took effect
        assert due["telemetry"] and max(due["telemetry"]) <= 120
        assert due["heartbeat"] and max(due["heartbeat"]) <= 20
        for device in hq:
            assert device.agent.telemetry_interval == 120
            assert device.agent.heartbeat_interval == 20
            assert device.agent.log.level == "debug"
            assert any(" DEBUG " in line for line in device.agent.log.lines())
        assert {reported[i]["device_name"] for i in ids} == {"HQ room"}
        # the device given a key it does not know refused that command, naming the key
        assert stale_result == {
            "applied": False,
            "version": "legacy@1",
            "key": "audio.equalizer",
            "reason": "unknown configuration key",
        }
        refusal = [line for line in hq[0].agent.log.lines() if "legacy@1 refused" in line]
        assert refusal and "audio.equalizer" in refusal[0]

    asyncio.run(scenario_run())


def test_diagnostics_from_20_devices_are_20_bundles_uploaded_by_their_agents(
    live_stack: Stack, tmp_path: Path
) -> None:
    models = dict(zip(CATALOGUE, (4, 4, 3, 3, 3, 3), strict=True))
    scenario = fleet_scenario("agent-diagnostics", models)

    async def scenario_run() -> None:
        run = await start_fleet(live_stack, tmp_path, scenario)
        admin = fleet_admin(run)
        devices = run.fleets["rooms"].devices
        by_id = {str(d.agent.device_id): d for d in devices}
        try:
            assert len(devices) == 20

            def bundles() -> dict[str, list[dict[str, Any]]]:
                found: dict[str, list[dict[str, Any]]] = {}
                for row in admin.http.get("/v1/diagnostics").json():
                    bundle = json.loads(admin.fetch_diagnostics(row["bundle_id"]))
                    found.setdefault(row["device_id"], []).append(bundle)
                return found

            # the negative control: before the push, at the default level, no DEBUG line
            first = devices[0]
            await in_thread(admin.request_diagnostics, str(first.agent.device_id))
            before = await wait_until(lambda: bundles() or None, 30, "the first bundle")
            site_id = run.fleets["rooms"].site_ids[0]
            profile = await in_thread(
                admin.create_profile, "verbose", {"log.level": "debug"}, {"site_id": site_id}
            )
            version = f"verbose@{profile['version']}"
            await in_thread(admin.push_profile, profile["profile_id"])
            await wait_for_devices(
                lambda: all(d.agent.configuration_version == version for d in devices),
                30,
                "every device to apply the log level",
            )
            bundle_command: dict[str, int] = {}
            for device_id in by_id:
                asked = await in_thread(admin.request_diagnostics, device_id)
                bundle_command[device_id] = asked["command_id"]
            after = await wait_until(
                lambda: (b := bundles()) and sum(len(v) for v in b.values()) == 21 and b,
                60,
                "20 more bundles",
            )
            logs = {i: d.agent.log.lines() for i, d in by_id.items()}
        finally:
            await run.close()
            admin.close()

        (early,) = before[str(first.agent.device_id)]
        assert " DEBUG " not in early["logs"]["agent.log"]
        assert set(after) == set(by_id)
        for device_id, found in after.items():
            device = by_id[device_id]
            bundle = found[-1]
            dm_operations.diagnosis_fields_only(bundle)
            assert bundle["device_id"] == device_id and bundle["mac"] == device.agent.identity.mac
            assert bundle["ip_address"] == device.agent.network.ipv4_address
            assert list(bundle["logs"]) == ["agent.log"]
            lines = bundle["logs"]["agent.log"].splitlines()
            # the agent's own lines, all it kept up to the upload, at the pushed level
            kept = logs[device_id]
            assert lines == kept[: len(lines)]
            assert lines[-1].endswith(f"diagnostics {bundle_command[device_id]}: uploading the log")
            uploaded = f"diagnostics {bundle_command[device_id]} uploaded"
            assert any(uploaded in line for line in kept[len(lines) :])
            assert any(f"configuration {version} applied" in line for line in lines)
            assert any(" DEBUG setting log.level = debug" in line for line in lines)

    asyncio.run(scenario_run())
