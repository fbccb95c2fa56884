"""Negative controls: each scenario family fails when its property is broken.

Every Then step of features/dm, dm_operations, devices, meeting and sim calls a registered check of
`roomtrust.comply.checks`. For each check this suite holds good evidence (the check must pass on
it, so a failure below is due to the break and not to a check that always fails) and one or more
broken variants: the checked property made false, or the selection made empty. Each broken variant
must fail with the reason given here.

Then, for each family, whole scenarios of the real feature file run with pytester against a
dedicated fixture target that breaks the claim on purpose (a weak DM region, a weak meeting region,
a recorded fleet with a stranger that reported, simulation records with a dropped call) and must
fail in the step that checks the claim. The services are never weakened.

The table in reports/compliance/README.md ("Negative controls") is generated from this module;
`test_the_readme_lists_every_negative_control` keeps it in step.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import FeatureParser
from pytest_bdd.steps import step_function_context_registry

import features.steps.devices_steps
import features.steps.dm_operations_steps
import features.steps.dm_steps
import features.steps.meeting_steps
import features.steps.sim_steps  # noqa: F401  (their step definitions are looked up below)
from devices_virtual.driver.recorder import Connection
from devices_virtual.models import CATALOGUE
from roomtrust.claims import load_claims
from roomtrust.comply.catalogue import FEATURES, scenario_refs
from roomtrust.comply.checks import Check, all_checks, common, devices, dm, dm_operations, meeting
from roomtrust.comply.checks import sim as sim_checks
from roomtrust.comply.checks.devices import DeviceFacts, FleetFacts
from roomtrust.comply.fixture_regions import WeakDmRegion, WeakMeetingRegion
from roomtrust.comply.verdicts import FAIL, claim_verdicts, scenario_outcomes
from services.common.passwords import hash_password
from services.common.settings import MEETING_REGIONS
from services.dm.domain.catalogue import MANAGED_MODELS
from sim.latency import latency_matrix

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "reports" / "compliance" / "README.md"
THIS = "tests/comply/test_comply_negative_controls.py"
FAMILIES: dict[str, tuple[str, ...]] = {
    "dm": ("features.steps.dm_steps",),
    "dm_operations": ("features.steps.dm_operations_steps", "features.steps.dm_steps"),
    "devices": ("features.steps.devices_steps",),
    "meeting": ("features.steps.meeting_steps",),
    "sim": ("features.steps.sim_steps",),
}


@dataclass
class Controls:
    """A check, evidence on which it passes, and broken variants (case -> overrides of the good
    arguments, and the text the failure must contain)."""

    check: Callable[..., None]
    good: dict[str, Any]
    broken: dict[str, tuple[dict[str, Any], str]]


# -- evidence ------------------------------------------------------------------------------------

PASSWORD_HASHES = [hash_password("correct horse"), hash_password("correct horse")]
BODY_422 = {"error": "Invalid", "field": "meeting_transcript", "reason": "not a DM-09 category"}


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


MATRIX = latency_matrix()


def placement(*locations: str, region: str | None = None) -> dict[str, Any]:
    means = {r: sum(MATRIX[loc][r] for loc in locations) / len(locations) for r in MEETING_REGIONS}
    best = min(means, key=lambda r: means[r])
    return {"locations": list(locations), "region": region or best, "candidates": means}


def call_load(*placements: dict[str, Any]) -> dict[str, Any]:
    chosen = placements or tuple(
        placement(*locs)
        for locs in (("germany",), ("japan",), ("singapore",), ("us-east",), ("brazil", "chile"))
    )
    return {
        "scenario": "sim-call-load",
        "metrics": {"offered": 120},
        "series": {"placements": list(chosen)},
    }


def failover(replaced_after: tuple[float, ...] = (300.0, 420.0), **metrics: Any) -> dict[str, Any]:
    return {
        "scenario": "sim-failover",
        "metrics": {"relay_failures": 2, "moved_calls": 14, "dropped_calls": 0, **metrics},
        "series": {"replacements": [{"replaced_after_s": s} for s in replaced_after]},
    }


def without_metric(name: str) -> dict[str, Any]:
    record = failover()
    del record["metrics"][name]
    return record


CDR = {
    "cdr_id": "c1",
    "conference_id": "sa-1",
    "region": "sa",
    "started_at": "t0",
    "ended_at": "t1",
    "legs": [
        {"account_id": a, "joined_at": "t0", "left_at": "t1", "encrypted": True, "transport": "wss"}
        for a in ("a1", "a2")
    ],
}


def cdr(**changes: Any) -> dict[str, Any]:
    return {**CDR, **changes}


def cdr_leg(**changes: Any) -> dict[str, Any]:
    return cdr(legs=[{**CDR["legs"][0], **changes}, CDR["legs"][1]])


NOTICE = {"kind": "recording.started", "by": "Rosa", "text": "Rosa is recording this call"}
OPLOG = ["settings.update", "role.assign", "account.revoke"]
PERSONAL_AND_KEYS = sorted(meeting.PERSONAL_FIELDS | meeting.KEYS_AND_STATE)
EMPTY_TRACE: dict[str, list[str]] = {"database": [], "logs": [], "storage": []}


# -- the controls, check by check ----------------------------------------------------------------

CONTROLS: list[Controls] = [
    # common
    Controls(
        common.status_is,
        {"status": 403, "expected": 403, "what": "the un-deployed device's next heartbeat"},
        {"accepted": ({"status": 200}, "expected HTTP 403, got 200")},
    ),
    Controls(
        common.status_with_reason,
        {"status": 401, "body": {"reason": "no client certificate"}, "expected": 401},
        {
            "accepted": ({"status": 200, "body": {"stored": True}}, "expected HTTP 401"),
            "no-reason": ({"body": {"error": "Unauthorized"}}, "gives no reason"),
            "no-body": ({"body": None}, "gives no reason"),
        },
    ),
    Controls(
        common.answer_names_field,
        {"status": 422, "body": BODY_422, "expected": 422, "field": "meeting_transcript"},
        {
            "stored": ({"status": 200, "body": {"stored": True}}, "got 200"),
            "other-field": ({"field": "chat_message"}, "names the field 'meeting_transcript'"),
            "no-reason": ({"body": {**BODY_422, "reason": ""}}, "gives no reason"),
        },
    ),
    Controls(
        common.password_hashes,
        {"hashes": PASSWORD_HASHES, "minimum": 2},
        {
            "plaintext": ({"hashes": [PASSWORD_HASHES[0], "correct horse"]}, "not Argon2id"),
            "md5": (
                {"hashes": [PASSWORD_HASHES[0], "5f4dcc3b5aa765d61d8327deb882cf99"]},
                "not Argon2id",
            ),
            "too-few": ({"hashes": PASSWORD_HASHES[:1]}, "fewer than the 2"),
            "empty": ({"hashes": [], "minimum": 1}, "only 0 stored"),
        },
    ),
    Controls(
        common.hashes_differ,
        {"hashes": PASSWORD_HASHES},
        {
            "unsalted": ({"hashes": [PASSWORD_HASHES[0]] * 2}, "not salted"),
            "empty": ({"hashes": []}, "selected no password hashes"),
        },
    ),
    Controls(
        common.secret_nowhere,
        {"secret": "hunter2", "places": [("table administrators", "ada $argon2id$"), ("f", b"x")]},
        {
            "in-a-row": ({"places": [("table notes", "pw hunter2")]}, "['table notes']"),
            "in-a-file": ({"places": [("store.sqlite3", b"..hunter2..")]}, "store.sqlite3"),
            "nothing-searched": ({"places": []}, "selected no stored rows or files"),
        },
    ),
    # dm
    Controls(
        dm.every_model_enrolled,
        {"enrolled_models": set(MANAGED_MODELS)},
        {
            "one-missing": (
                {"enrolled_models": set(MANAGED_MODELS) - {"DeskVision A24"}},
                "no enrolled device of ['DeskVision A24']",
            ),
            "foreign-model": (
                {"enrolled_models": {*MANAGED_MODELS, "MeetingPhone Z1"}},
                "outside the catalogue",
            ),
            "empty": ({"enrolled_models": set()}, "selected no enrolled devices"),
        },
    ),
    Controls(
        dm.no_certificate_issued,
        {"has_certificate": False, "who": "a device nobody deployed"},
        {"issued": ({"has_certificate": True}, "was issued a certificate")},
    ),
    Controls(
        dm.no_table_gained_a_row,
        {"before": {"devices": 3, "telemetry": 5}, "after": {"devices": 3, "telemetry": 5}},
        {
            "telemetry-stored": ({"after": {"devices": 3, "telemetry": 6}}, "gained rows"),
            "new-table": (
                {"after": {"devices": 3, "telemetry": 5, "transcripts": 0}},
                "set of tables changed",
            ),
            "row-deleted": ({"after": {"devices": 2, "telemetry": 5}}, "row counts changed"),
            "empty": ({"before": {}}, "selected no tables"),
        },
    ),
    Controls(
        dm.refused_at_handshake,
        {"answered_status": None, "region": "us"},
        {
            "served": ({"answered_status": 200}, "completed the handshake"),
            "refused-too-late": ({"answered_status": 403}, "answered HTTP 403"),
        },
    ),
    Controls(
        dm.listed_with_firmware,
        {
            "rows": [{"device_id": "d1", "firmware_version": "3.1.4"}],
            "device_id": "d1",
            "version": "3.1.4",
        },
        {
            "not-updated": (
                {"rows": [{"device_id": "d1", "firmware_version": "3.0.0"}]},
                "shows firmware '3.0.0'",
            ),
            "not-listed": ({"device_id": "d2"}, "not in the device list"),
            "empty": ({"rows": []}, "selected no listed devices"),
        },
    ),
    # dm_operations
    Controls(
        dm_operations.active_alert,
        {
            "alerts": [{"severity": "major", "component": "camera"}],
            "severity": "major",
            "component": "camera",
        },
        {
            "no-alert": ({"alerts": []}, "no active alert"),
            "wrong-severity": (
                {"alerts": [{"severity": "minor", "component": "camera"}]},
                "('minor', 'camera')",
            ),
        },
    ),
    Controls(
        dm_operations.acknowledged_then_cleared,
        {"acknowledged": "acknowledged", "cleared": "cleared"},
        {
            "ack-ignored": ({"acknowledged": "active"}, "after acknowledge the alert is 'active'"),
            "never-cleared": ({"cleared": "acknowledged"}, "after clear"),
        },
    ),
    Controls(
        dm_operations.oplog_records,
        {
            "actions": {"alert.acknowledged", "alert.cleared"},
            "expected": {"alert.acknowledged", "alert.cleared"},
        },
        {
            "clear-unlogged": ({"actions": {"alert.acknowledged"}}, "holds ['alert.acknowledged']"),
            "empty": ({"actions": set()}, "selected no operation log entries"),
        },
    ),
    Controls(
        dm_operations.profile_delivered,
        {
            "pushed_ids": ["a", "b"],
            "site_ids": ["a", "b"],
            "received": {
                "a": [{"payload": {"version": "p@1"}}],
                "b": [{"payload": {"version": "p@1"}}],
            },
            "version": "p@1",
        },
        {
            "other-site-targeted": ({"pushed_ids": ["a", "b", "c"]}, "the push targeted"),
            "not-received": (
                {"received": {"a": [{"payload": {"version": "p@1"}}], "b": []}},
                "exactly once: ['b']",
            ),
            "old-version": (
                {"received": {d: [{"payload": {"version": "p@0"}}] for d in "ab"}},
                "received versions ['p@0']",
            ),
            "empty": ({"site_ids": []}, "selected no devices at the site"),
        },
    ),
    Controls(
        dm_operations.profile_acknowledged,
        {
            "acks": {d: {"applied": True, "version": "p@1"} for d in "ab"},
            "version": "p@1",
        },
        {
            "stand-in-ack": (
                {"acks": {d: {"applied": True} for d in "ab"}},
                "acknowledged versions ['None']",
            ),
            "silent": ({"acks": {"a": {"applied": True, "version": "p@1"}, "b": None}}, "['b']"),
            "refused": (
                {"acks": {"a": {"applied": False, "version": "p@1", "key": "k"}}},
                "did not apply the profile: ['a']",
            ),
            "empty": ({"acks": {}}, "selected no acknowledgements"),
        },
    ),
    Controls(
        dm_operations.nothing_delivered,
        {"received": {"c": []}},
        {
            "leaked": ({"received": {"c": [{"kind": "config"}]}}, "received commands"),
            "empty": ({"received": {}}, "selected no devices outside the target"),
        },
    ),
    Controls(
        dm_operations.no_drift,
        {"drift_rows": [{"device_id": "x"}], "site_ids": {"a", "b"}, "listed_ids": {"a", "b"}},
        {
            "drifting": ({"drift_rows": [{"device_id": "a"}]}, "drift from the profile"),
            "unlisted": ({"listed_ids": {"a"}}, "misses ['b']"),
            "empty": ({"site_ids": set()}, "selected no devices at the site"),
        },
    ),
    Controls(
        dm_operations.diagnosis_fields_only,
        {"bundle": dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS, "v")},
        {
            "screenshot": (
                {
                    "bundle": {
                        **dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS, "v"),
                        "screenshot": "png",
                    }
                },
                "outside remote diagnosis: ['screenshot']",
            ),
            "no-logs": (
                {"bundle": dict.fromkeys(dm_operations.DIAGNOSIS_FIELDS - {"logs"}, "v")},
                "lacks ['logs']",
            ),
            "empty": ({"bundle": {}}, "selected no fields"),
        },
    ),
    # devices
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
    # meeting
    Controls(
        meeting.conference_hosted_in,
        {"conference": {"region": "sa", "conference_id": "sa-1"}, "region": "sa"},
        {
            "elsewhere": (
                {"conference": {"region": "na", "conference_id": "na-1"}},
                "hosted in 'na'",
            ),
            "id-of-another-region": (
                {"conference": {"region": "sa", "conference_id": "na-1"}},
                "not of region sa",
            ),
        },
    ),
    Controls(
        meeting.redirected_to_home_region,
        {"status": 409, "body": {"reason": "the conference lives in region sa"}, "region": "sa"},
        {
            "served-elsewhere": ({"status": 200}, "answered 200"),
            "home-unnamed": ({"body": {"reason": "conflict"}}, "does not name region 'sa'"),
        },
    ),
    Controls(
        meeting.stored_only_in_home_region,
        {"counts": {"na": 0, "sa": 1, "eu": 0, "asia": 0}, "region": "sa"},
        {
            "replicated": ({"counts": {"na": 0, "sa": 1, "eu": 1, "asia": 0}}, "'eu': 1"),
            "empty": ({"counts": {}}, "selected no region stores"),
        },
    ),
    Controls(
        meeting.placed_nearest,
        {
            "answer": {"region": "eu", "candidates": {"na": 90, "sa": 200, "eu": 10, "asia": 190}},
            "region": "eu",
        },
        {
            "far-region": (
                {"answer": {"region": "na", "candidates": {"na": 90, "eu": 10}}},
                "placed in 'na'",
            ),
            "not-nearest": (
                {"answer": {"region": "eu", "candidates": {"na": 9, "eu": 10}}},
                "the best candidate has 9",
            ),
            "empty": ({"answer": {"region": "eu", "candidates": {}}}, "selected no candidate"),
        },
    ),
    Controls(
        meeting.no_encryption_switch,
        {"settings": {"chat_enabled": True}, "before": {"chat_enabled": True}},
        {
            "switch": (
                {"settings": {"chat_enabled": True, "encryption_enabled": False}},
                "encryption switches ['encryption_enabled']",
            ),
            "changed": ({"settings": {"chat_enabled": False}}, "the settings changed"),
            "empty": ({"settings": {}}, "selected no enterprise settings"),
        },
    ),
    Controls(
        meeting.plain_connections_refused,
        {"answers": {"plain HTTP": None, "plain WebSocket": None}},
        {
            "plain-http": (
                {"answers": {"plain HTTP": "HTTP 200", "plain WebSocket": None}},
                "were answered",
            ),
            "empty": ({"answers": {}}, "selected no plain-text connection attempts"),
        },
    ),
    Controls(
        meeting.waits_in_lobby,
        {"person": "Nick", "types": ["hello", "lobby.waiting"]},
        {
            "admitted": (
                {"types": ["hello", "admitted", "roster"]},
                "Nick got ['admitted', 'roster'] without a moderator's decision",
            ),
            "nothing": ({"types": []}, "never told to wait"),
        },
    ),
    Controls(
        meeting.moderator_told_of,
        {"person": "Nick", "knock": {"participant": {"display_name": "Nick"}}},
        {
            "someone-else": ({"knock": {"participant": {"display_name": "Eve"}}}, "told of 'Eve'"),
            "no-knock": ({"knock": None}, "was not told that Nick waits"),
        },
    ),
    Controls(
        meeting.in_roster,
        {
            "person": "Nick",
            "roster": {"participants": [{"display_name": "Mona"}, {"display_name": "Nick"}]},
        },
        {
            "left-out": (
                {"roster": {"participants": [{"display_name": "Mona"}]}},
                "not in the roster",
            ),
            "empty": ({"roster": {"participants": []}}, "selected no roster"),
        },
    ),
    Controls(
        meeting.rejected_without_secrets,
        {"person": "Eve", "close_code": 4403, "types": ["hello", "lobby.waiting", "rejected"]},
        {
            "got-keys": (
                {"types": ["hello", "lobby.waiting", "media.keys", "rejected"]},
                "received ['media.keys']",
            ),
            "still-connected": ({"close_code": None}, "closed with None"),
            "not-told": ({"types": ["hello", "lobby.waiting"]}, "not told of the rejection"),
        },
    ),
    Controls(
        meeting.only_moderator_admitted,
        {
            "roster": {"participants": [{"display_name": "Mona"}], "lobby": [{}, {}, {}]},
            "moderator": "Mona",
            "waiting": 3,
            "crowd_types": [["lobby.waiting"]] * 3,
        },
        {
            "crowd-in-roster": (
                {
                    "roster": {
                        "participants": [{"display_name": "Mona"}, {"display_name": "Crowd"}],
                        "lobby": [{}, {}],
                    }
                },
                "the roster holds ['Mona', 'Crowd']",
            ),
            "lobby-short": (
                {"roster": {"participants": [{"display_name": "Mona"}], "lobby": [{}]}},
                "1 wait in the lobby",
            ),
            "crowd-admitted": (
                {"crowd_types": [["lobby.waiting"], ["admitted", "roster"], ["lobby.waiting"]]},
                "1 of the crowd were admitted",
            ),
            "empty": ({"crowd_types": []}, "selected no joining sockets"),
        },
    ),
    Controls(
        meeting.hidden_from_directory,
        {"listed_ids": {"sa-open"}, "hidden_ids": {"sa-once", "sa-hidden"}},
        {
            "listed": (
                {"listed_ids": {"sa-open", "sa-hidden"}},
                "the directory lists ['sa-hidden']",
            ),
            "empty": ({"hidden_ids": set()}, "selected no conferences that must stay hidden"),
        },
    ),
    Controls(
        meeting.join_refused_not_found,
        {"error": {"error": "NotFound", "field": "conference_id"}},
        {
            "no-error": ({"error": None}, "got no error"),
            "other-error": (
                {"error": {"error": "Forbidden", "field": None}},
                "('Forbidden', None)",
            ),
        },
    ),
    Controls(
        meeting.refused_as_forbidden,
        {
            "errors": [
                {"error": "Forbidden", "reason": "chat is off: the administrator disabled it"}
            ],
            "because": "administrator",
        },
        {
            "other-error": (
                {"errors": [{"error": "Invalid", "reason": "administrator"}]},
                "not refused as Forbidden",
            ),
            "no-reason": (
                {"errors": [{"error": "Forbidden", "reason": "no"}]},
                "do not mention the administrator",
            ),
            "empty": ({"errors": []}, "selected no refusals"),
        },
    ),
    Controls(
        meeting.told_muted_by,
        {"notices": {"Nick": {"by": "Mona"}, "Ned": {"by": "Mona"}}, "by": "Mona"},
        {
            "wrong-moderator": (
                {"notices": {"Nick": {"by": "Mona"}, "Ned": {"by": None}}},
                "{'Ned': None}",
            ),
            "empty": ({"notices": {}}, "selected no muted participants"),
        },
    ),
    Controls(
        meeting.video_off,
        {"state": {"video": False}},
        {
            "still-on": ({"state": {"video": True}}, "video True"),
            "no-state": ({"state": {}}, "video None"),
        },
    ),
    Controls(
        meeting.closed_with,
        {
            "person": "Ned",
            "close_code": 4000,
            "expected": 4000,
            "types": ["removed"],
            "told": "removed",
        },
        {
            "still-open": ({"close_code": None}, "closed with None, not 4000"),
            "not-told": ({"types": ["roster"]}, "was not sent 'removed'"),
        },
    ),
    Controls(
        meeting.revoked_refused,
        {
            "status": 401,
            "body": {"reason": "access revoked"},
            "login_status": 401,
            "login_body": {"reason": "access revoked"},
            "expected": 401,
        },
        {
            "still-served": ({"status": 200, "body": {"account_id": "a"}}, "got 200, not 401"),
            "no-reason": ({"body": {}}, "gives no reason"),
            "can-log-in": ({"login_status": 200, "login_body": {"token": "t"}}, "login got 200"),
            "wrong-reason": ({"login_body": {"reason": "bad password"}}, "says 'bad password'"),
        },
    ),
    Controls(
        meeting.room_system_limited,
        {
            "me": {
                "kind": "room_system",
                "permissions": ["call.place_receive", "media.self_disable"],
            },
            "accounts_status": 403,
        },
        {
            "user": ({"me": {"kind": "user", "permissions": []}}, "logs in as 'user'"),
            "extra-permission": (
                {
                    "me": {
                        "kind": "room_system",
                        "permissions": [
                            "call.place_receive",
                            "media.self_disable",
                            "member.manage",
                        ],
                    }
                },
                "member.manage",
            ),
            "lists-accounts": ({"accounts_status": 200}, "listed accounts (200)"),
        },
    ),
    Controls(
        meeting.holds_exactly,
        {"held": ["dashboard", "statistics"], "expected": ["dashboard", "statistics"]},
        {
            "extra": ({"held": ["dashboard", "statistics", "record"]}, "['record'] too much"),
            "missing": ({"held": ["dashboard"]}, "misses ['statistics']"),
            "empty": ({"expected": []}, "selected no expected permissions"),
        },
    ),
    Controls(
        meeting.cannot_assign_role,
        {"created_role": "user", "status": 403},
        {
            "assigned": ({"status": 200}, "role change got 200"),
            "created-manager": ({"created_role": "meeting_manager"}, "created a 'meeting_manager'"),
        },
    ),
    Controls(
        meeting.retained_until_deadline,
        {"rows": {"accounts": 2, "call_records": 1, "conferences": 1}, "me_status": 200},
        {
            "deleted-early": (
                {"rows": {"accounts": 0, "call_records": 0}},
                "(0, 0), expected (2, 1)",
            ),
            "locked-out": ({"me_status": 401}, "got 401 before the deadline"),
        },
    ),
    Controls(
        meeting.deleted_after_deadline,
        {"rows": {"accounts": 0, "call_records": 0, "conferences": 0}, "me_status": 401},
        {
            "cdr-kept": (
                {"rows": {"accounts": 0, "call_records": 1, "conferences": 0}},
                "{'call_records': 1}",
            ),
            "still-served": ({"me_status": 200}, "got 200, not 401"),
            "empty": ({"rows": {}}, "selected no tables counted"),
        },
    ),
    Controls(
        meeting.log_retention,
        {"old_exists": False, "young_exists": True},
        {
            "kept-30-days-too-long": ({"old_exists": True}, "older than 180 days is still there"),
            "deleted-early": ({"young_exists": False}, "younger than 180 days was deleted"),
        },
    ),
    Controls(
        meeting.only_listed_account_fields,
        {"columns": PERSONAL_AND_KEYS},
        {
            "phone": ({"columns": [*PERSONAL_AND_KEYS, "phone"]}, "unlisted fields ['phone']"),
            "no-company": (
                {"columns": [c for c in PERSONAL_AND_KEYS if c != "company"]},
                "lacks ['company']",
            ),
            "empty": ({"columns": []}, "selected no columns"),
        },
    ),
    Controls(
        meeting.cdr_metadata_only,
        {
            "records": [CDR],
            "region": "sa",
            "accounts": {"a1", "a2"},
            "chat_text": "quarterly numbers",
        },
        {
            "media-link": (
                {"records": [cdr(recording_url="s3://x")]},
                "the call record has fields",
            ),
            "chat-kept": ({"records": [cdr_leg(transport="quarterly numbers")]}, "holds chat text"),
            "plain-leg": ({"records": [cdr_leg(encrypted=False)]}, "not encrypted"),
            "two-records": ({"records": [CDR, CDR]}, "2 call records"),
            "other-region": ({"records": [cdr(region="eu")]}, "of region eu"),
            "leg-missing": ({"accounts": {"a1", "a2", "a3"}}, "expected ['a1', 'a2', 'a3']"),
            "no-legs": ({"records": [cdr(legs=[])]}, "selected no call legs"),
        },
    ),
    Controls(
        meeting.told_who_records,
        {"notices": {p: [NOTICE] for p in ("Mona", "Rosa", "Luis")}, "recorder": "Rosa"},
        {
            "late-joiner-untold": (
                {"notices": {"Mona": [NOTICE], "Rosa": [NOTICE], "Luis": []}},
                "Luis got no recording notice",
            ),
            "anonymous": (
                {"notices": {"Mona": [{**NOTICE, "by": None, "text": "recording"}]}},
                "by None",
            ),
            "empty": ({"notices": {}}, "selected no participants"),
        },
    ),
    Controls(
        meeting.recording_only_in,
        {
            "new_files": {"sa": {"r1.rec"}, "eu": set()},
            "region": "sa",
            "recording_id": "r1",
            "raw": b"\x8f\x11\x02 ciphertext",
            "conference_id": "sa-1",
        },
        {
            "replicated": ({"new_files": {"sa": {"r1.rec"}, "eu": {"r1.rec"}}}, "outside sa"),
            "missing": ({"new_files": {"sa": set()}}, "new recording files in sa: []"),
            "plaintext": ({"raw": b"conference sa-1 audio"}, "not encrypted"),
            "empty-file": ({"raw": b""}, "empty"),
        },
    ),
    Controls(
        meeting.not_shared_outside,
        {"share_status": 403, "stranger_status": 404},
        {
            "shared": ({"share_status": 200}, "got 200, not 403"),
            "visible": ({"stranger_status": 200}, "other organisation got 200"),
        },
    ),
    Controls(
        meeting.chat_echoed,
        {"sent": "enabled now", "received": {"text": "enabled now"}},
        {
            "not-delivered": ({"received": None}, "delivered None"),
            "altered": ({"received": {"text": "x"}}, "'x'"),
        },
    ),
    Controls(
        meeting.marker_nowhere,
        {"traces": dict.fromkeys(MEETING_REGIONS, EMPTY_TRACE), "logs_searched": 2},
        {
            "chat-logged": (
                {"traces": {"sa": {**EMPTY_TRACE, "logs": ["logs/meeting-sa.log"]}}},
                "the chat marker is stored",
            ),
            "chat-in-database": (
                {"traces": {"eu": {**EMPTY_TRACE, "database": ["messages"]}}},
                "messages",
            ),
            "no-logs": ({"logs_searched": 0}, "no server log to search"),
            "empty": ({"traces": {}}, "selected no meeting regions"),
        },
    ),
    Controls(
        meeting.oplog_holds,
        {"entries": [{"action": a, "actor": "ada", "at": "t"} for a in OPLOG], "actions": OPLOG},
        {
            "revoke-unlogged": (
                {"entries": [{"action": a, "actor": "ada", "at": "t"} for a in OPLOG[:2]]},
                "lacks ['account.revoke']",
            ),
            "anonymous": (
                {"entries": [{"action": a, "actor": "", "at": "t"} for a in OPLOG]},
                "without actor",
            ),
            "empty": ({"entries": []}, "selected no operation log entries"),
        },
    ),
    Controls(
        meeting.statistics_access,
        {"statuses": {"meeting_manager GET /v1/statistics/cdr": 200}, "expected": 200},
        {
            "refused": (
                {"statuses": {"meeting_manager GET /v1/statistics/cdr": 403}},
                "not answered 200",
            ),
            "empty": ({"statuses": {}}, "selected no statistics requests"),
        },
    ),
    # sim
    Controls(
        sim_checks.has_placements,
        {"record": call_load()},
        {
            "no-series": (
                {"record": {"scenario": "sim-call-load", "metrics": {}}},
                "selected no placements",
            ),
            "empty": ({"record": {"series": {"placements": []}}}, "selected no placements"),
        },
    ),
    Controls(
        sim_checks.placements_optimal,
        {"record": call_load(), "matrix": MATRIX},
        {
            "germany-to-na": (
                {"record": call_load(placement("germany", region="na"))},
                "not in the nearest region",
            ),
            "unknown-location": (
                {
                    "record": call_load(
                        {"locations": ["atlantis"], "region": "eu", "candidates": {"eu": 1}}
                    )
                },
                "not in the latency matrix",
            ),
            "empty": ({"record": {"series": {"placements": []}}}, "selected no placements"),
        },
    ),
    Controls(
        sim_checks.placed_by_continent,
        {"record": call_load()},
        {
            "japan-to-eu": (
                {
                    "record": call_load(
                        placement("germany"), placement("us-east"), placement("japan", region="eu")
                    )
                },
                "japan -> eu",
            ),
            "europe-only": ({"record": call_load(placement("germany"))}, "only from ['eu']"),
        },
    ),
    Controls(
        sim_checks.relay_failed_under_load,
        {"record": failover()},
        {
            "no-failure": ({"record": failover(relay_failures=0)}, "no relay failed"),
            "idle-relays": ({"record": failover(moved_calls=0)}, "carried no call"),
            "no-metric": (
                {"record": without_metric("relay_failures")},
                "no metric 'relay_failures'",
            ),
        },
    ),
    Controls(
        sim_checks.no_call_dropped,
        {"record": failover()},
        {
            "dropped": ({"record": failover(dropped_calls=3)}, "3 call(s) were dropped"),
            "no-metric": ({"record": without_metric("dropped_calls")}, "no metric 'dropped_calls'"),
            "no-calls": ({"record": failover(moved_calls=0)}, "no call was moved"),
        },
    ),
    Controls(
        sim_checks.replaced_within,
        {"record": failover(), "minutes": 10},
        {
            "slow": ({"record": failover((300.0, 900.0))}, "later than 10 minutes"),
            "not-replaced": ({"record": failover((300.0,))}, "1 replacement(s) for 2"),
            "empty": ({"record": failover(())}, "selected no relay replacements"),
        },
    ),
]


def _key(func: Callable[..., None]) -> str:
    found = [c.key for c in all_checks().values() if c.func is func]
    assert found, f"{func.__qualname__} is not a registered check"
    return found[0]


CASES = [
    pytest.param(c.check, {**c.good, **overrides}, reason, id=f"{_key(c.check)}-{case}")
    for c in CONTROLS
    for case, (overrides, reason) in c.broken.items()
]


@pytest.mark.parametrize(("check", "evidence", "reason"), CASES)
def test_a_check_fails_when_its_property_is_broken(
    check: Callable[..., None], evidence: dict[str, Any], reason: str
) -> None:
    with pytest.raises(AssertionError) as failed:
        check(**evidence)
    assert reason in str(failed.value), f"failed for another reason: {failed.value}"


@pytest.mark.parametrize("controls", CONTROLS, ids=[_key(c.check) for c in CONTROLS])
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)


def test_every_registered_check_has_a_negative_control() -> None:
    controlled = [_key(c.check) for c in CONTROLS]
    assert sorted(set(controlled)) == sorted(controlled), "a check is listed twice"
    missing = set(all_checks()) - set(controlled)
    assert not missing, f"checks without a negative control: {sorted(missing)}"
    assert all(c.broken for c in CONTROLS)


# -- every Then step calls a registered check ----------------------------------------------------


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def step_checks(family: str) -> dict[str, list[Check]]:
    """Each step of the family's feature (`Then <text>`) -> the registered checks its step
    definition calls; every Then step is listed, Given and When steps only when they call one."""
    contexts = [
        c
        for c in step_function_context_registry.values()
        if c.step_func.__module__ in FAMILIES[family]
    ]
    feature = FeatureParser(str(FEATURES), f"{family}.feature").parse()
    found: dict[str, list[Check]] = {}
    checks = all_checks().values()
    for template in feature.scenarios.values():
        for step in template.steps:
            label = f"{step.type.capitalize()} {step.name}"
            if label in found:
                continue
            matching = [
                c
                for c in contexts
                if c.type in (step.type, None) and c.parser.is_matching(step.name)
            ]
            assert matching, f"{family}: no step definition for {label!r}"
            used = _names_used(matching[-1].step_func.__code__)
            calls = [c for c in checks if c.name in used]
            if calls or step.type == "then":
                found[label] = calls
    return found


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_then_step_calls_a_registered_check(family: str) -> None:
    steps = {k: v for k, v in step_checks(family).items() if k.startswith("Then ")}
    assert steps, f"{family}.feature has no Then step"
    bare = [name for name, used in steps.items() if not used]
    assert not bare, f"Then steps of {family} that call no registered check: {bare}"


# -- whole scenarios against fixture targets -----------------------------------------------------


def _bind(pytester: pytest.Pytester, family: str, body: str) -> None:
    shutil.copy(FEATURES / f"{family}.feature", pytester.path / f"{family}.feature")
    pytester.makepyfile(**{f"test_{family}_control": textwrap.dedent(body)})


def _failures(reprec: pytest.HookRecorder) -> dict[str, str]:
    """Each test that ran -> 'passed', or the failing phase and its crash message."""
    outcome: dict[str, str] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::")[-1]
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            outcome[name] = f"{report.when}: {crash.message if crash else report.longrepr}"
        elif report.when == "call":
            outcome.setdefault(name, "passed")
    return outcome


INNER_ARGS = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning")


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture regions keep their store in SQLite under the stack home."""
    monkeypatch.delenv("ROOMTRUST_DATABASE_URL", raising=False)


@pytest.fixture
def weak_dm(tmp_path: Path, no_postgres: None) -> Iterator[WeakDmRegion]:
    with WeakDmRegion(tmp_path / "weak-stack", "us") as region:
        yield region


def test_dm_scenarios_fail_against_a_dm_region_that_enrolls_anyone_and_stores_anything(
    pytester: pytest.Pytester, weak_dm: WeakDmRegion
) -> None:
    (pytester.path / "stack.json").write_text(json.dumps(weak_dm.stack()))
    _bind(
        pytester,
        "dm",
        """
        import json
        from pathlib import Path

        import pytest
        from pytest_bdd import scenarios

        from features.steps.dm_steps import *  # noqa: F403


        @pytest.fixture(scope="session")
        def live_stack():
            return json.loads((Path(__file__).parent / "stack.json").read_text())


        scenarios("dm.feature")
        """,
    )
    picked = "nobody_deployed or accepts_no_telemetry or meeting_transcript"
    outcome = _failures(pytester.inline_run("-k", picked, *INNER_ARGS))
    assert outcome == {
        "test_a_device_nobody_deployed_gets_no_certificate_and_leaves_nothing_behind": (
            "call: roomtrust.comply.checks.CheckFailed: a device nobody deployed was issued a "
            "certificate"
        ),
        "test_without_a_certificate_the_service_accepts_no_telemetry": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 401 with a reason, got 200: "
            "{'stored': True}"
        ),
        "test_telemetry_outside_the_listed_data_categories_is_refused_and_stores_nothing"
        "[meeting_transcript]": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
            "'meeting_transcript', got 200: {'stored': True}"
        ),
    }


def test_dm_operations_scenario_fails_against_a_dm_region_that_raises_no_alert(
    pytester: pytest.Pytester, weak_dm: WeakDmRegion
) -> None:
    (pytester.path / "stack.json").write_text(json.dumps(weak_dm.stack()))
    _bind(
        pytester,
        "dm_operations",
        """
        import json
        from pathlib import Path

        import pytest
        from pytest_bdd import scenarios

        from features.steps.dm_operations_steps import *  # noqa: F403
        from features.steps.dm_steps import *  # noqa: F403


        @pytest.fixture(scope="session")
        def live_stack():
            return json.loads((Path(__file__).parent / "stack.json").read_text())


        scenarios("dm_operations.feature")
        """,
    )
    picked = "camera_fault or contacts"
    outcome = _failures(pytester.inline_run("-k", picked, *INNER_ARGS))
    assert sorted(outcome) == [
        "test_a_reported_camera_fault_raises_an_alert_that_goes_active_acknowledged_cleared",
        "test_configuration_never_carries_enduser_data[contacts.list]",
    ]
    assert outcome[sorted(outcome)[0]] == (
        "call: roomtrust.comply.checks.CheckFailed: no active alert is listed for the device"
    )
    assert outcome[sorted(outcome)[1]].startswith(
        "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
        "'values.contacts.list', got 201: {'profile_id': "
    )


def test_meeting_scenarios_fail_against_a_meeting_region_without_lobby_and_with_a_switch(
    pytester: pytest.Pytester, tmp_path: Path, no_postgres: None
) -> None:
    with WeakMeetingRegion(tmp_path / "weak-stack", "sa") as region:
        (pytester.path / "stack.json").write_text(json.dumps(region.stack()))
        _bind(
            pytester,
            "meeting",
            """
            import json
            from pathlib import Path

            import pytest
            from pytest_bdd import scenarios

            from features.steps.meeting_steps import *  # noqa: F403


            @pytest.fixture(scope="session")
            def meeting_regions():
                return json.loads((Path(__file__).parent / "stack.json").read_text())


            scenarios("meeting.feature")
            """,
        )
        picked = "locked_conference_keeps or switch_encryption_off"
        outcome = _failures(pytester.inline_run("-k", picked, *INNER_ARGS))
    assert outcome == {
        "test_a_locked_conference_keeps_newcomers_in_the_lobby_until_a_moderator_decides": (
            "call: roomtrust.comply.checks.CheckFailed: Nick got ['admitted', 'roster'] without "
            "a moderator's decision"
        ),
        "test_nobody_can_switch_encryption_off": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
            "'encryption_enabled', got 200: {'chat_enabled': True, 'recording_enabled': True, "
            "'encryption_enabled': False}"
        ),
    }


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
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "fleet.json").write_text(json.dumps(broken_fleet().to_dict()))
    _bind(
        pytester,
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
    outcome = _failures(pytester.inline_run(*INNER_ARGS))
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


def test_sim_scenarios_fail_on_simulation_records_with_a_misplaced_conference_and_a_dropped_call(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    results = tmp_path / "sim-results"
    results.mkdir()
    bad_load = call_load(*call_load()["series"]["placements"], placement("japan", region="na"))
    (results / "call-load.json").write_text(json.dumps(bad_load))
    (results / "failover.json").write_text(json.dumps(failover(dropped_calls=3)))
    spec = tmp_path / "target.json"
    spec.write_text(json.dumps({"kind": "sim", "name": "broken-sim", "results": str(results)}))
    _bind(
        pytester,
        "sim",
        """
        from pytest_bdd import scenarios

        from features.steps.sim_steps import *  # noqa: F403

        scenarios("sim.feature")
        """,
    )
    out = tmp_path / "report"
    pytester.inline_run(
        "-p",
        "roomtrust.comply.plugin",
        f"--comply-target={spec}",
        f"--comply-out={out}",
        f"--comply-features={pytester.path}",
        *INNER_ARGS,
    )
    # the verdicts `roomtrust comply --target sim:DIR` would give, from the plugin's results
    items = json.loads((out / "results-broken-sim.json").read_text())["items"]
    refs = scenario_refs(pytester.path)
    outcomes = scenario_outcomes(refs, "sim", "broken-sim", None, items)
    verdicts = {v.id: v for v in claim_verdicts(load_claims(), refs, outcomes, {})}
    assert verdicts["MT-01"].verdict == FAIL
    assert "not in the nearest region" in verdicts["MT-01"].reasons[0]
    assert verdicts["MT-03"].verdict == FAIL
    assert "3 call(s) were dropped" in verdicts["MT-03"].reasons[0]


# -- the README table ----------------------------------------------------------------------------

SCENARIO_CONTROLS = {
    "dm": "test_dm_scenarios_fail_against_a_dm_region_that_enrolls_anyone_and_stores_anything",
    "dm_operations": "test_dm_operations_scenario_fails_against_a_dm_region_that_raises_no_alert",
    "devices": "test_devices_scenarios_fail_on_a_recorded_fleet_that_breaks_each_claim",
    "meeting": "test_meeting_scenarios_fail_against_a_meeting_region_without_lobby_and_with_a_switch",
    "sim": "test_sim_scenarios_fail_on_simulation_records_with_a_misplaced_conference_and_a_dropped_call",
}


def negative_controls_table() -> str:
    """The markdown table of reports/compliance/README.md: family, Then step, check, controls."""
    cases = {_key(c.check): list(c.broken) for c in CONTROLS}
    lines = [
        "| family | step | check | negative controls "
        f"(`{THIS}::test_a_check_fails_when_its_property_is_broken[<check>-<case>]`) |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        for step, used in step_checks(family).items():
            for check in used:
                controls = ", ".join(f"`{case}`" for case in cases[check.key])
                lines.append(f"| {family} | {step} | `{check.key}` | {controls} |")
    lines += [
        "",
        "| family | whole scenarios against a fixture target |",
        "|---|---|",
        *(f"| {f} | `{THIS}::{test}` |" for f, test in SCENARIO_CONTROLS.items()),
    ]
    return "\n".join(lines) + "\n"


def test_the_readme_lists_every_negative_control() -> None:
    text = README.read_text()
    start, end = "<!-- negative-controls:start -->\n", "<!-- negative-controls:end -->"
    assert start in text and end in text, "README lacks the negative-controls markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == negative_controls_table(), (
        "the table is out of date; regenerate it with "
        "`python -c 'from tests.comply.test_comply_negative_controls import "
        "negative_controls_table as t; print(t())'`"
    )
