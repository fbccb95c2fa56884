"""Negative controls of the `devices` checks (roomtrust/comply/checks/devices.py) over the facts of a
recorded fleet, and whole scenarios of features/devices.feature on a recorded fleet that breaks
each claim once."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from devices_virtual.driver.recorder import Connection
from devices_virtual.models import CATALOGUE
from roomtrust.comply.checks import devices
from roomtrust.comply.checks.devices import DeviceFacts, FleetFacts
from roomtrust.comply.negative import Case, Controls, FeatureRun, all_cases

pytest_plugins = ["pytester"]


def good_fleet() -> FleetFacts:
    """Six enrolled twins (one per model, the first three switched DM off at t=10) and one
    stranger nobody deployed; every connection is outbound, boot contacts are the preconfigured
    domains and the DM server."""
    devices_: list[DeviceFacts] = []
    connections: list[Connection] = []
    dm_host = "127.0.0.1"

    def connect(at: float, mac: str, host: str, target: str, purpose: str) -> None:
        port = 443 if target != "ntp" else 123
        connections.append(Connection(at, mac, host, port, "tcp", target, purpose))

    models = list(CATALOGUE.values())
    switched = [f"02:00:00:00:00:0{i}" for i in range(3)]
    for i, model in enumerate(models):
        mac = f"02:00:00:00:00:0{i}"
        off = mac in switched
        devices_.append(
            DeviceFacts(
                name=mac,
                model=dataclasses.asdict(model),
                deployed=True,
                enrolled=True,
                phase="dm_off" if off else "online",
                dm_enabled=not off,
                channel_open=not off,
                holds_tls_identity=True,
                certificate_file=True,
                firmware_version=model.firmware_version,
                clock_synced=True,
                stats={"heartbeat:200": 2, "telemetry:200": 1},
            )
        )
        connect(0.1, mac, "www.msftncsi.com", "connectivity", "ncsi")
        connect(0.2, mac, "www.google.com", "connectivity", "generate_204")
        connect(0.3, mac, "time.windows.com", "ntp", "ntp")
        for at, purpose in ((1, "enroll"), (2, "heartbeat"), (3, "telemetry"), (4, "commands")):
            connect(at, mac, dm_host, "dm", purpose)
        if not off:
            connect(12, mac, dm_host, "dm", "heartbeat")
    stranger = "02:00:00:00:00:ff"
    devices_.append(
        DeviceFacts(
            name=stranger,
            model=dataclasses.asdict(models[0]),
            deployed=False,
            enrolled=False,
            phase="enroll_wait",
            dm_enabled=True,
            channel_open=False,
            holds_tls_identity=False,
            certificate_file=False,
            firmware_version=models[0].firmware_version,
            clock_synced=True,
            stats={"enroll:403": 2},
        )
    )
    connect(0.1, stranger, "www.msftncsi.com", "connectivity", "ncsi")
    connect(0.2, stranger, "www.google.com", "connectivity", "generate_204")
    connect(0.3, stranger, "time.windows.com", "ntp", "ntp")
    connect(1, stranger, dm_host, "dm", "enroll")
    connect(6, stranger, dm_host, "dm", "enroll")
    listed = [
        {"device_id": f"d{i}", "mac": d.name, "model": d.model_name, "enrolled": True}
        for i, d in enumerate(devices_)
        if d.deployed
    ]
    count = len(devices_)
    return FleetFacts(
        devices=devices_,
        connections=connections,
        dm_host=dm_host,
        listed=listed,
        toggle={"device_macs": switched, "at": 10.0},
        standins_served={"/ncsi.txt": count, "/generate_204": count, "ntp": count},
    )


def fleet_with(**changes: Any) -> FleetFacts:
    return dataclasses.replace(good_fleet(), **changes)


def fleet_device(index: int, **changes: Any) -> FleetFacts:
    fleet = good_fleet()
    fleet.devices[index] = dataclasses.replace(fleet.devices[index], **changes)
    return fleet


def fleet_plus(*extra: Connection) -> FleetFacts:
    fleet = good_fleet()
    return dataclasses.replace(fleet, connections=[*fleet.connections, *extra])


def fleet_without(predicate: Callable[[Connection], bool]) -> FleetFacts:
    fleet = good_fleet()
    return dataclasses.replace(
        fleet, connections=[c for c in fleet.connections if not predicate(c)]
    )


STRANGER = -1
SWITCHED = "02:00:00:00:00:00"
LEFT_ON = 4


def fleet_all_a10() -> FleetFacts:
    fleet = good_fleet()
    a10 = dataclasses.asdict(CATALOGUE["MeetingBar A10"])
    return dataclasses.replace(
        fleet,
        devices=[
            dataclasses.replace(d, model=a10, firmware_version=a10["firmware_version"])
            for d in fleet.devices
        ],
    )


CONTROLS: list[Controls] = [
    Controls(
        devices.every_model_has_enrolled_twin,
        {"fleet": good_fleet()},
        {
            "one-not-enrolled": ({"fleet": fleet_device(5, enrolled=False)}, "enrolled models"),
            "none-enrolled": (
                {"fleet": fleet_with(devices=[d for d in good_fleet().devices if not d.deployed])},
                "selected no enrolled devices",
            ),
        },
    ),
    Controls(
        devices.reports_accepted,
        {"fleet": good_fleet()},
        {
            "telemetry-refused": (
                {"fleet": fleet_device(1, stats={"heartbeat:200": 3, "telemetry:422": 1})},
                "without an accepted heartbeat and telemetry",
            ),
            "none-enrolled": (
                {"fleet": fleet_with(devices=[d for d in good_fleet().devices if not d.deployed])},
                "selected no enrolled devices",
            ),
        },
    ),
    Controls(
        devices.service_lists_every_model,
        {"fleet": good_fleet()},
        {
            "model-unlisted": (
                {"fleet": fleet_with(listed=good_fleet().listed[:-1])},
                f"missing ['{list(CATALOGUE)[-1]}']",
            ),
            "empty": ({"fleet": fleet_with(listed=[])}, "selected no devices listed"),
        },
    ),
    Controls(
        devices.twins_have_model_capabilities,
        {"fleet": good_fleet()},
        {
            "wrong-hardware": (
                {"fleet": fleet_device(0, model={**good_fleet().devices[0].model, "cameras": 3})},
                "differs from the catalogue",
            ),
            "wrong-firmware": (
                {"fleet": fleet_device(2, firmware_version="1.0.0")},
                "firmware 1.0.0",
            ),
            "one-kind-only": ({"fleet": fleet_all_a10()}, "capabilities untested"),
            "empty": (
                {"fleet": fleet_with(devices=[d for d in good_fleet().devices if not d.deployed])},
                "selected no deployed devices",
            ),
        },
    ),
    Controls(
        devices.stranger_refused_enrollment,
        {"fleet": good_fleet()},
        {
            "never-refused": (
                {"fleet": fleet_device(STRANGER, stats={"enroll:201": 1})},
                "never refused",
            ),
            "went-online": ({"fleet": fleet_device(STRANGER, phase="online")}, "past enrollment"),
            "no-stranger": (
                {"fleet": fleet_with(devices=good_fleet().devices[:-1])},
                "selected no undeployed devices",
            ),
        },
    ),
    Controls(
        devices.stranger_holds_no_certificate,
        {"fleet": good_fleet()},
        {
            "certificate-file": (
                {"fleet": fleet_device(STRANGER, certificate_file=True)},
                "holds a certificate file",
            ),
            "tls-identity": (
                {"fleet": fleet_device(STRANGER, holds_tls_identity=True, enrolled=True)},
                "enrolled state, a TLS client identity",
            ),
            "no-stranger": (
                {"fleet": fleet_with(devices=good_fleet().devices[:-1])},
                "selected no undeployed devices",
            ),
        },
    ),
    Controls(
        devices.stranger_sent_no_report,
        {"fleet": good_fleet()},
        {
            "telemetry-sent": (
                {
                    "fleet": fleet_plus(
                        Connection(
                            7, "02:00:00:00:00:ff", "127.0.0.1", 443, "tcp", "dm", "telemetry"
                        )
                    )
                },
                "reached the DM service for ['telemetry']",
            ),
            "no-attempt": (
                {"fleet": fleet_without(lambda c: c.device.endswith("ff") and c.target == "dm")},
                "selected no DM connections of the undeployed device",
            ),
        },
    ),
    Controls(
        devices.stranger_not_listed,
        {"fleet": good_fleet()},
        {
            "listed": (
                {"fleet": fleet_with(listed=[*good_fleet().listed, {"mac": "02:00:00:00:00:ff"}])},
                "lists the undeployed device",
            ),
            "empty": ({"fleet": fleet_with(listed=[])}, "selected no devices listed"),
        },
    ),
    Controls(
        devices.switched_talked_before,
        {"fleet": good_fleet()},
        {
            "never-reported": (
                {
                    "fleet": fleet_without(
                        lambda c: c.device == SWITCHED and c.purpose == "telemetry"
                    )
                },
                "had not yet used",
            ),
            "no-switch": ({"fleet": fleet_with(toggle=None)}, "recorded no DM switch"),
            "nobody-switched": (
                {"fleet": fleet_with(toggle={"device_macs": [], "at": 10.0})},
                "selected no switched devices",
            ),
        },
    ),
    Controls(
        devices.switched_silent_after,
        {"fleet": good_fleet()},
        {
            "heartbeat-after-off": (
                {
                    "fleet": fleet_plus(
                        Connection(11, SWITCHED, "127.0.0.1", 443, "tcp", "dm", "heartbeat")
                    )
                },
                "connection(s) to the DM service after the switch",
            ),
            "channel-open": ({"fleet": fleet_device(0, channel_open=True)}, "channel closed"),
            "nobody-switched": (
                {"fleet": fleet_with(toggle={"device_macs": [], "at": 10.0})},
                "selected no switched devices",
            ),
        },
    ),
    Controls(
        devices.others_still_connected,
        {"fleet": good_fleet()},
        {
            "dropped": ({"fleet": fleet_device(LEFT_ON, channel_open=False)}, "disconnected"),
            "all-switched": (
                {
                    "fleet": fleet_with(
                        toggle={"device_macs": [d.name for d in good_fleet().devices], "at": 10.0}
                    )
                },
                "selected no devices left on",
            ),
        },
    ),
    Controls(
        devices.boot_contacts_preconfigured_only,
        {"fleet": good_fleet()},
        {
            "unlisted-host": (
                {
                    "fleet": fleet_plus(
                        Connection(0.5, SWITCHED, "telemetry.example.net", 443, "tcp", "other", "x")
                    )
                },
                "contacted ['telemetry.example.net'] during boot",
            ),
            "no-ntp": (
                {"fleet": fleet_without(lambda c: c.host == "time.windows.com")},
                "missing ['time.windows.com']",
            ),
            "nothing-recorded": ({"fleet": fleet_with(connections=[])}, "selected no hosts"),
        },
    ),
    Controls(
        devices.standins_answered,
        {"fleet": good_fleet()},
        {
            "ntp-short": (
                {
                    "fleet": fleet_with(
                        standins_served={"/ncsi.txt": 7, "/generate_204": 7, "ntp": 2}
                    )
                },
                "served fewer than the 7 devices",
            ),
            "no-standins": ({"fleet": fleet_with(standins_served=None)}, "no connectivity or NTP"),
            "clock-unsynced": (
                {"fleet": fleet_device(3, clock_synced=False)},
                "without a synced clock",
            ),
            "no-devices": ({"fleet": fleet_with(devices=[])}, "selected no devices"),
        },
    ),
    Controls(
        devices.optional_sites_not_contacted,
        {"fleet": good_fleet()},
        {
            "vendor-link": (
                {
                    "fleet": fleet_plus(
                        Connection(20, SWITCHED, "www.yealink.com", 443, "tcp", "vendor", "x")
                    )
                },
                "optional sites on their own",
            ),
            "nothing-recorded": ({"fleet": fleet_with(connections=[])}, "selected no recorded"),
        },
    ),
    Controls(
        devices.connections_outbound,
        {"fleet": good_fleet()},
        {
            "inbound": (
                {
                    "fleet": fleet_plus(
                        Connection(20, SWITCHED, "198.51.100.7", 22, "tcp", "other", "x", "inbound")
                    )
                },
                "not opened by the device",
            ),
            "nothing-recorded": ({"fleet": fleet_with(connections=[])}, "selected no recorded"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)


def broken_fleet() -> FleetFacts:
    """A recorded fleet in which every claim of devices.feature is broken once: a model is
    missing from the DM service's list (DM-01), the stranger enrolled and reported (DM-02), a
    switched device kept sending heartbeats (DM-03), and a device phoned an unlisted host during
    boot (DM-12)."""
    fleet = good_fleet()
    stranger = dataclasses.replace(
        fleet.devices[STRANGER], certificate_file=True, holds_tls_identity=True
    )
    extra = [
        Connection(0.5, SWITCHED, "telemetry.example.net", 443, "tcp", "other", "analytics"),
        Connection(7, stranger.name, "127.0.0.1", 443, "tcp", "dm", "telemetry"),
        Connection(11, SWITCHED, "127.0.0.1", 443, "tcp", "dm", "heartbeat"),
    ]
    return dataclasses.replace(
        fleet,
        devices=[*fleet.devices[:STRANGER], stranger],
        connections=sorted([*fleet.connections, *extra], key=lambda c: c.at),
        listed=fleet.listed[1:],
    )


def test_devices_scenarios_fail_on_a_recorded_fleet_that_breaks_each_claim(
    feature_run: FeatureRun,
) -> None:
    (feature_run.path / "fleet.json").write_text(json.dumps(broken_fleet().to_dict()))
    feature_run.bind(
        "devices",
        """
        import json
        from pathlib import Path

        from pytest_bdd import given, parsers, scenarios

        from features.steps.devices_steps import *  # noqa: F403
        from roomtrust.comply.checks.devices import FleetFacts

        # the real Then steps; the fleet run is replaced by a recorded fleet (the fixture target)
        for _name in [n for n in globals() if n.startswith("pytestbdd_stepdef_given_the fleet ran")]:
            del globals()[_name]


        @given(
            parsers.parse(
                'the fleet ran against DM region "{region}" of the target, ending with half of its '
                "online devices switching DM off"
            ),
            target_fixture="fleet",
        )
        def recorded_fleet(region):
            return FleetFacts.from_dict(json.loads((Path(__file__).parent / "fleet.json").read_text()))


        scenarios("devices.feature")
        """,
    )
    outcome = feature_run.outcomes()
    prefix = "call: roomtrust.comply.checks.CheckFailed: "
    assert outcome == {
        "test_every_managed_model_has_a_virtual_twin_that_enrolls_and_reports": prefix
        + "the DM service lists enrolled "
        + str(sorted(list(CATALOGUE)[1:]))
        + f"; missing ['{next(iter(CATALOGUE))}']",
        "test_a_device_nobody_deployed_gets_no_certificate_and_sends_no_telemetry": prefix
        + "the undeployed device 02:00:00:00:00:ff holds a TLS client identity, a certificate file",
        "test_while_the_dm_connection_is_switched_off_the_device_sends_nothing_to_the_dm_service": prefix
        + "1 connection(s) to the DM service after the switch, e.g. "
        "[('02:00:00:00:00:00', 'heartbeat', 11)]",
        "test_during_boot_a_device_contacts_only_its_preconfigured_domains_and_the_dm_server": prefix
        + "devices contacted ['telemetry.example.net'] during boot",
    }
