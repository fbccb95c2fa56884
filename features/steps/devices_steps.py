"""Steps of features/devices.feature: DM-01, DM-02, DM-03 and DM-12 through real virtual devices.

The fleet runs once per target (it takes a few seconds) and every scenario reads its results: the
devices' own state, the DM admin API and the connection recorder, gathered into one `FleetFacts`
record that the checks of `roomtrust.comply.checks.devices` judge. The run's summary and the facts
(every recorded connection among them) are kept as evidence.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pytest_bdd import given, parsers, then

from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import FleetRun, run_fleet
from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import Scenario, parse_scenario
from protocol.stack import Stack
from roomtrust.comply.checks import devices as checks
from roomtrust.comply.checks.devices import DeviceFacts, FleetFacts
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import comply_target, evidence
from roomtrust.comply.targets import Target
from services.dm.client import DmAdmin

FIXTURES = (comply_target, evidence)

_RUNS: dict[tuple[str, str], tuple[FleetRun, dict[str, Any]]] = {}


def _scenario(region: str) -> Scenario:
    return parse_scenario(
        {
            "name": f"features-devices-{region}",
            "seeds": [12],
            "timing": {"heartbeat_s": 30, "telemetry_s": 300, "boot_scale": 0},
            "fleets": [
                {
                    "name": "twins",
                    "dm_region": region,
                    "sites": [{"name": "Lab"}],
                    "models": dict.fromkeys(CATALOGUE, 1),
                    "undeployed": 1,
                }
            ],
            "phases": [
                {"kind": "deploy"},
                {"kind": "enroll", "within_s": 1, "timeout_s": 60},
                {"kind": "steady", "duration_s": 1},
                {"kind": "toggle_dm", "enabled": False, "share": 0.5, "duration_s": 3},
            ],
        }
    )


def _device_facts(device: VirtualDevice, deployed: bool) -> DeviceFacts:
    agent = device.agent
    return DeviceFacts(
        name=device.name,
        model=dataclasses.asdict(agent.identity.model),
        deployed=deployed,
        enrolled=bool(agent.enrolled),
        phase=str(agent.phase),
        dm_enabled=bool(agent.dm_enabled),
        channel_open=bool(agent.channel_open),
        holds_tls_identity=device.ctx is not None,
        certificate_file=device.keys.cert_file.exists(),
        firmware_version=str(agent.firmware_version),
        clock_synced=agent.clock_offset is not None,
        stats=dict(device.stats),
    )


def fleet_facts(run: FleetRun, summary: dict[str, Any], stack: Stack) -> FleetFacts:
    """What the checks need of a finished fleet run, read from its devices, its connection
    recorder, its stand-ins and the DM service's device list."""
    state = run.fleets["twins"]
    dm = stack.endpoint("dm", state.fleet.dm_region)
    with DmAdmin(dm.url, dm.ca_file) as admin:
        admin.http.headers["authorization"] = state.admin.http.headers["authorization"]
        listed = admin.devices()
    toggles = summary.get("dm_toggles") or []
    return FleetFacts(
        devices=[
            _device_facts(d, s.deployed) for s, d in zip(state.specs, state.devices, strict=True)
        ],
        connections=list(run.recorder.connections),
        dm_host=urlsplit(state.dm_url).hostname or "",
        listed=listed,
        toggle=toggles[0] if len(toggles) == 1 else None,
        standins_served=dict(run.standins.served) if run.standins is not None else None,
    )


@given("a fleet with one virtual device of every managed model and one device nobody deployed")
def _fleet_plan() -> None:
    assert len(CATALOGUE) == 6


@given(
    parsers.parse(
        'the fleet ran against DM region "{region}" of the target, ending with half of its '
        "online devices switching DM off"
    ),
    target_fixture="fleet",
)
def _fleet_ran(
    comply_target: Target, evidence: Evidence, region: str, tmp_path_factory: pytest.TempPathFactory
) -> FleetFacts:
    stack = comply_target.stack()
    key = (str(stack.home), region)
    if key not in _RUNS:
        work: Path = tmp_path_factory.mktemp("devices-fleet")
        _RUNS[key] = run_fleet(_scenario(region), stack, work)
    run, summary = _RUNS[key]
    facts = fleet_facts(run, summary, stack)
    evidence.write_json("fleet-summary.json", summary)
    evidence.write_json("fleet-facts.json", facts.to_dict())
    return facts


# -- DM-01 ---------------------------------------------------------------------------------------


@then("every managed model has a virtual device that enrolled")
def _every_model_enrolled(fleet: FleetFacts) -> None:
    checks.every_model_has_enrolled_twin(fleet)


@then("every enrolled virtual device had its heartbeat and telemetry accepted")
def _reports_accepted(fleet: FleetFacts) -> None:
    checks.reports_accepted(fleet)


@then("the DM service lists every managed model among the fleet's devices")
def _listed_models(fleet: FleetFacts) -> None:
    checks.service_lists_every_model(fleet)


@then("each virtual twin has the capabilities of its model")
def _capabilities(fleet: FleetFacts) -> None:
    checks.twins_have_model_capabilities(fleet)


# -- DM-02 ---------------------------------------------------------------------------------------


@then("the undeployed device asked to enroll and was refused")
def _refused(fleet: FleetFacts) -> None:
    checks.stranger_refused_enrollment(fleet)


@then("the undeployed device holds no certificate")
def _no_certificate(fleet: FleetFacts) -> None:
    checks.stranger_holds_no_certificate(fleet)


@then("the recorded connections show no report from the undeployed device")
def _no_reports(fleet: FleetFacts) -> None:
    checks.stranger_sent_no_report(fleet)


@then("the DM service does not list the undeployed device")
def _not_listed(fleet: FleetFacts) -> None:
    checks.stranger_not_listed(fleet)


# -- DM-03 ---------------------------------------------------------------------------------------


@then("the switched devices had talked to the DM service before the switch")
def _talked_before(fleet: FleetFacts) -> None:
    checks.switched_talked_before(fleet)


@then(
    "the recorded connections show no traffic from the switched devices to the DM service "
    "afterwards"
)
def _silent_after(fleet: FleetFacts) -> None:
    checks.switched_silent_after(fleet)


@then("the devices left switched on are still connected")
def _others_connected(fleet: FleetFacts) -> None:
    checks.others_still_connected(fleet)


# -- DM-12 ---------------------------------------------------------------------------------------


@then("during boot every device contacted only the preconfigured domains and its DM server")
def _boot_contacts(fleet: FleetFacts) -> None:
    checks.boot_contacts_preconfigured_only(fleet)


@then("the connectivity-check and NTP stand-ins answered every device")
def _standins_answered(fleet: FleetFacts) -> None:
    checks.standins_answered(fleet)


@then("the proxy test site and the vendor links were never contacted")
def _no_optional_sites(fleet: FleetFacts) -> None:
    checks.optional_sites_not_contacted(fleet)


@then("every recorded connection was opened by the device")
def _outbound(fleet: FleetFacts) -> None:
    checks.connections_outbound(fleet)
