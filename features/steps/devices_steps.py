"""Steps of features/devices.feature: DM-01, DM-02, DM-03 and DM-12 through real virtual devices.

The fleet runs once per target (it takes a few seconds) and every scenario reads its results: the
devices' own state, the DM admin API and the connection recorder. The summary and every recorded
connection are kept as evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pytest_bdd import given, parsers, then

from devices_virtual.agent import Phase
from devices_virtual.agent.domains import BOOT_HOSTS
from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import FleetRun, run_fleet
from devices_virtual.models import CATALOGUE, get_model
from devices_virtual.scenario import Scenario, parse_scenario
from roomtrust.comply.evidence import Evidence, nonempty
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


class Fleet:
    def __init__(self, run: FleetRun, summary: dict[str, Any], stack: dict[str, Any]) -> None:
        self.run = run
        self.summary = summary
        self.stack = stack
        self.state = run.fleets["twins"]
        pairs = list(zip(self.state.specs, self.state.devices, strict=True))
        self.deployed = [d for s, d in pairs if s.deployed]
        self.undeployed = [d for s, d in pairs if not s.deployed]

    def listed(self) -> list[dict[str, Any]]:
        info = self.stack["services"]["dm"][self.state.fleet.dm_region]
        with DmAdmin(info["url"], info["ca_file"]) as admin:
            admin.http.headers["authorization"] = self.state.admin.http.headers["authorization"]
            return admin.devices()

    @property
    def toggle(self) -> dict[str, Any]:
        (toggle,) = self.summary["dm_toggles"]
        return toggle


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
) -> Fleet:
    stack = comply_target.stack()
    key = (str(stack.get("home")), region)
    if key not in _RUNS:
        work: Path = tmp_path_factory.mktemp("devices-fleet")
        _RUNS[key] = run_fleet(_scenario(region), stack, work)
    run, summary = _RUNS[key]
    evidence.write_json("fleet-summary.json", summary)
    evidence.write_json("fleet-connections.json", [c.as_dict() for c in run.recorder.connections])
    return Fleet(run, summary, stack)


# -- DM-01 ---------------------------------------------------------------------------------------


@then("every managed model has a virtual device that enrolled")
def _every_model_enrolled(fleet: Fleet) -> None:
    enrolled = nonempty([d for d in fleet.deployed if d.agent.enrolled], "enrolled devices")
    assert {d.agent.identity.model.name for d in enrolled} == set(CATALOGUE)


@then("every enrolled virtual device had its heartbeat and telemetry accepted")
def _reports_accepted(fleet: Fleet) -> None:
    enrolled = nonempty([d for d in fleet.deployed if d.agent.enrolled], "enrolled devices")
    for device in enrolled:
        assert device.stats["heartbeat:200"] >= 1, device.name
        assert device.stats["telemetry:200"] >= 1, device.name


@then("the DM service lists every managed model among the fleet's devices")
def _listed_models(fleet: Fleet) -> None:
    rows = nonempty(fleet.listed(), "devices listed by the DM service")
    assert {r["model"] for r in rows if r["enrolled"]} == set(CATALOGUE)


@then("each virtual twin has the capabilities of its model")
def _capabilities(fleet: Fleet) -> None:
    devices = nonempty(fleet.deployed, "deployed devices")
    for device in devices:
        model = device.agent.identity.model
        assert model == get_model(model.name)
        assert device.agent.firmware_version == model.firmware_version
    assert len({d.agent.identity.model.components for d in devices}) >= 2


# -- DM-02 ---------------------------------------------------------------------------------------


def _stranger(fleet: Fleet) -> VirtualDevice:
    (stranger,) = nonempty(fleet.undeployed, "undeployed devices")
    return stranger


@then("the undeployed device asked to enroll and was refused")
def _refused(fleet: Fleet) -> None:
    stranger = _stranger(fleet)
    assert stranger.stats["enroll:403"] >= 1
    assert stranger.agent.phase in (Phase.ENROLL_WAIT, Phase.ENROLLING)


@then("the undeployed device holds no certificate")
def _no_certificate(fleet: Fleet) -> None:
    stranger = _stranger(fleet)
    assert not stranger.agent.enrolled and stranger.ctx is None
    assert not stranger.keys.cert_file.exists()


@then("the recorded connections show no report from the undeployed device")
def _no_reports(fleet: Fleet) -> None:
    stranger = _stranger(fleet)
    to_dm = nonempty(fleet.run.recorder.to_dm([stranger.name]), "its DM connections")
    assert {c.purpose for c in to_dm} == {"enroll"}


@then("the DM service does not list the undeployed device")
def _not_listed(fleet: Fleet) -> None:
    stranger = _stranger(fleet)
    rows = nonempty(fleet.listed(), "devices listed by the DM service")
    assert stranger.name not in {r["mac"] for r in rows}


# -- DM-03 ---------------------------------------------------------------------------------------


@then("the switched devices had talked to the DM service before the switch")
def _talked_before(fleet: Fleet) -> None:
    macs = nonempty(fleet.toggle["device_macs"], "switched devices")
    before = [c for c in fleet.run.recorder.to_dm(macs) if c.at < fleet.toggle["at"]]
    for mac in macs:
        purposes = {c.purpose for c in before if c.device == mac}
        assert {"heartbeat", "telemetry", "commands"} <= purposes, mac


@then(
    "the recorded connections show no traffic from the switched devices to the DM service "
    "afterwards"
)
def _silent_after(fleet: Fleet) -> None:
    macs = nonempty(fleet.toggle["device_macs"], "switched devices")
    assert fleet.run.recorder.to_dm(macs, since=fleet.toggle["at"]) == []
    for device in fleet.state.devices:
        if device.name in macs:
            assert device.agent.phase is Phase.DM_OFF and not device.agent.channel_open


@then("the devices left switched on are still connected")
def _others_connected(fleet: Fleet) -> None:
    macs = set(fleet.toggle["device_macs"])
    others = nonempty(
        [d for d in fleet.deployed if d.name not in macs and d.agent.enrolled], "other devices"
    )
    assert all(d.agent.dm_enabled and d.agent.channel_open for d in others)


# -- DM-12 ---------------------------------------------------------------------------------------


@then("during boot every device contacted only the preconfigured domains and its DM server")
def _boot_contacts(fleet: Fleet) -> None:
    dm_host = urlsplit(fleet.state.dm_url).hostname or ""
    devices = nonempty(fleet.state.devices, "devices")
    seen, unexpected = fleet.run.boot_contacts(devices, dm_host)
    assert unexpected == set()
    assert seen == {"www.msftncsi.com", "www.google.com", "time.windows.com", dm_host}
    assert seen - {dm_host} <= BOOT_HOSTS


@then("the connectivity-check and NTP stand-ins answered every device")
def _standins_answered(fleet: Fleet) -> None:
    assert fleet.run.standins is not None
    served = fleet.run.standins.served
    count = len(nonempty(fleet.state.devices, "devices"))
    assert served["/ncsi.txt"] >= count and served["/generate_204"] >= count
    assert served["ntp"] >= count
    assert all(d.agent.clock_offset is not None for d in fleet.state.devices)


@then("the proxy test site and the vendor links were never contacted")
def _no_optional_sites(fleet: Fleet) -> None:
    connections = nonempty(fleet.run.recorder.connections, "recorded connections")
    assert not [c for c in connections if c.target in ("proxy_test", "vendor")]


@then("every recorded connection was opened by the device")
def _outbound(fleet: Fleet) -> None:
    connections = nonempty(fleet.run.recorder.connections, "recorded connections")
    assert all(c.direction == "outbound" for c in connections)
