"""A real fleet of every model against the live local stack: enrollment and reports, the undeployed
device (DM-02), the DM switch (DM-03), boot contacts (DM-12) and meetings through lobby and
moderation. One fleet run serves every test of this module."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devices_virtual.agent.domains import BOOT_HOSTS
from devices_virtual.driver.fleet import FleetRun, run_fleet
from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import parse_scenario
from protocol.stack import Stack
from services.dm.client import DmAdmin

LIVE_SCENARIO: dict[str, Any] = {
    "name": "live-test",
    "seeds": [5],
    "timing": {"heartbeat_s": 30, "telemetry_s": 300, "boot_scale": 0},
    "fleets": [
        {
            "name": "hq",
            "dm_region": "us",
            "meeting_region": "na",
            "sites": [{"name": "HQ", "time_zone": "America/New_York"}],
            "models": dict.fromkeys(CATALOGUE, 1),
            "undeployed": 1,
            "users": 3,
        }
    ],
    "phases": [
        {"kind": "deploy"},
        {"kind": "enroll", "within_s": 1, "timeout_s": 60},
        {"kind": "steady", "duration_s": 1},
        {
            "kind": "meetings",
            "duration_s": 4,
            "arrivals_per_min": 60,
            "meeting_s": 2,
            "participants": 1,
            "locked_share": 1.0,
            "password_share": 1.0,
            "recording_share": 1.0,
        },
        {"kind": "inject_faults", "component": "camera", "share": 0.5, "detail": "lens blocked"},
        {"kind": "steady", "duration_s": 2},
        {"kind": "toggle_dm", "enabled": False, "share": 0.5, "duration_s": 3},
    ],
}


@pytest.fixture(scope="module")
def fleet_run(
    live_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FleetRun, dict[str, Any]]:
    scenario = parse_scenario(LIVE_SCENARIO)
    run, summary = run_fleet(scenario, live_stack, tmp_path_factory.mktemp("fleet"))
    return run, summary


def test_every_model_enrolls_and_reports(
    fleet_run: tuple[FleetRun, dict[str, Any]], live_stack: Stack
) -> None:
    run, summary = fleet_run
    hq = summary["fleets"]["hq"]
    assert hq["enrolled_models"] == sorted(CATALOGUE)
    assert hq["enrolled"] == hq["deployed"] == len(CATALOGUE)
    deployed = [
        d
        for s, d in zip(run.fleets["hq"].specs, run.fleets["hq"].devices, strict=True)
        if s.deployed
    ]
    assert all(d.stats["telemetry:200"] >= 1 for d in deployed)
    assert all(d.stats["heartbeat:200"] >= 1 for d in deployed)
    assert all(d.stats["channel_closed:4003"] == 0 for d in deployed)
    # the DM service saw them too
    dm = live_stack.endpoint("dm", "us")
    listed = run.fleets["hq"].admin  # its token is still valid; use a sync client for the check
    with DmAdmin(dm.url, dm.ca_file) as admin:
        admin.http.headers["authorization"] = listed.http.headers["authorization"]
        rows = {row["mac"]: row for row in admin.devices()}
    assert {rows[d.name]["model"] for d in deployed} == set(CATALOGUE)
    assert all(rows[d.name]["enrolled"] for d in deployed)
    assert all(rows[d.name]["last_seen"] for d in deployed)


def test_undeployed_device_gets_no_certificate_and_sends_no_telemetry(
    fleet_run: tuple[FleetRun, dict[str, Any]],
) -> None:
    run, summary = fleet_run
    hq = summary["fleets"]["hq"]
    (stranger,) = [
        d
        for s, d in zip(run.fleets["hq"].specs, run.fleets["hq"].devices, strict=True)
        if not s.deployed
    ]
    assert stranger.stats["enroll:403"] >= 1  # it asked, and was refused
    assert not stranger.agent.enrolled and not stranger.keys.cert_file.exists()
    sent = {c.purpose for c in run.recorder.of([stranger.name]) if c.target == "dm"}
    assert sent == {"enroll"}
    assert hq["undeployed_reports"] == hq["undeployed_certificates"] == 0
    assert hq["undeployed_listed_by_dm"] == 0


def test_dm_switch_off_stops_all_traffic_to_dm(fleet_run: tuple[FleetRun, dict[str, Any]]) -> None:
    run, summary = fleet_run
    (toggle,) = summary["dm_toggles"]
    macs = toggle["device_macs"]
    assert len(macs) >= 3
    before = [c for c in run.recorder.to_dm(macs) if c.at < toggle["at"]]
    assert {c.purpose for c in before} >= {"heartbeat", "telemetry", "commands"}
    assert run.recorder.to_dm(macs, since=toggle["at"]) == []
    toggled = [d for d in run.fleets["hq"].devices if d.name in macs]
    assert all(d.agent.phase.value == "dm_off" and not d.agent.channel_open for d in toggled)
    # the devices left switched on were still enrolled and connected at the end
    others = [d for d in run.fleets["hq"].devices if d.agent.enrolled and d.name not in macs]
    assert others and all(d.agent.channel_open for d in others)


def test_boot_contacts_only_preconfigured_domains_and_the_dm_server(
    fleet_run: tuple[FleetRun, dict[str, Any]],
) -> None:
    run, summary = fleet_run
    hq = summary["fleets"]["hq"]
    dm_host = urlsplit(run.fleets["hq"].dm_url).hostname
    assert hq["boot_unexpected_hosts"] == []
    assert set(hq["boot_hosts"]) == {
        "www.msftncsi.com",
        "www.google.com",
        "time.windows.com",
        dm_host,
    }
    assert set(hq["boot_hosts"]) - {dm_host} <= BOOT_HOSTS
    # the stand-ins really answered: the checks and NTP went over the wire
    assert run.standins is not None
    served = run.standins.served
    assert served["/ncsi.txt"] >= 7 and served["/generate_204"] >= 7 and served["ntp"] >= 7
    # the proxy test site and the vendor links were never opened
    assert not [c for c in run.recorder.connections if c.target in ("proxy_test", "vendor")]
    assert all(c.direction == "outbound" for c in run.recorder.connections)


def test_faults_become_health_alerts(
    fleet_run: tuple[FleetRun, dict[str, Any]], live_stack: Stack
) -> None:
    run, summary = fleet_run
    (faults,) = summary["faults"]
    assert faults["devices"] >= 1
    assert summary["fleets"]["hq"]["health_events_accepted"] >= faults["devices"]
    dm = live_stack.endpoint("dm", "us")
    with DmAdmin(dm.url, dm.ca_file) as admin:
        admin.http.headers["authorization"] = run.fleets["hq"].admin.http.headers["authorization"]
        alerts = admin.alerts()
    assert len([a for a in alerts if "camera" in str(a)]) >= faults["devices"]


def test_meetings_with_room_devices_go_through_lobby_and_moderation(
    fleet_run: tuple[FleetRun, dict[str, Any]],
) -> None:
    _run, summary = fleet_run
    meetings = summary["meetings"]
    assert meetings["held"] >= 1, meetings
    assert meetings["failed"] == []
    assert meetings["completed"] == meetings["held"]
    assert meetings["lobby_waits"] >= 2 * meetings["held"]  # the room and the guest waited
    assert meetings["rooms_muted"] == meetings["held"]
    assert meetings["guests_removed"] == meetings["held"]
    assert meetings["recording_notices"] == meetings["held"]
    assert meetings["chats_delivered"] == meetings["held"]


def test_records_can_be_written(fleet_run: tuple[FleetRun, dict[str, Any]], tmp_path: Path) -> None:
    run, _summary = fleet_run
    kinds = {r["kind"] for r in run.records}
    assert {"phase", "deployed", "enrolled", "meeting", "toggle_dm", "faults"} <= kinds
