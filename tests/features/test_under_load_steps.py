"""The checks behind features/under_load.feature fail on evidence in which their claim is false:
an enrollment the region accepted, an undeployed device's MAC or an unknown telemetry field found
in a stored row, telemetry of the load stored with an unlisted field or not stored at all, checks
made outside the load's window (tests/comply/checks/test_checks_under_load.py), and a load that was
not yet running when the scenarios began."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from load.scenario import load_load_scenario
from load.window import HistoryRow
from roomtrust.comply.checks import CheckFailed, common
from roomtrust.comply.checks.under_load import listed_telemetry_stored
from roomtrust.comply.evidence import EmptySelection
from roomtrust.harness.load import LOAD_NAME, LOAD_REGION, LOAD_SCENARIO, LOAD_USERS, load_is_ready
from roomtrust.harness.stores import stored_places, telemetry_since

T0 = 1_800_000_000
MAC, SERIAL = "02:aa:bb:cc:dd:ee", "SN1234abcd"


def test_the_shipped_load_is_300_deployed_devices_against_the_checked_region() -> None:
    scenario = load_load_scenario(LOAD_SCENARIO)  # the schema every load scenario follows
    assert scenario.name == LOAD_NAME
    assert scenario.locust_classes() == ["DmDevice"]
    assert scenario.expected_users() == {"device": LOAD_USERS} and LOAD_USERS == 300
    assert {f.dm_region for f in scenario.fleets} == {LOAD_REGION}
    pace = scenario.load.classes["device"].constant_throughput
    assert pace is not None and 0.1 <= pace <= 1.0


@pytest.fixture
def store() -> Iterator[sa.Engine]:
    """A DM-like store: a device and three telemetry rows (the last one with an unlisted field)."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE devices (id TEXT, mac TEXT, serial_number TEXT)"))
        conn.execute(sa.text("CREATE TABLE telemetry (id INTEGER, device_id TEXT, fields JSON)"))
        conn.execute(sa.text("INSERT INTO devices VALUES ('d1', :mac, 'SN0001')"), {"mac": MAC})
        reports = [
            (1, "d1", {"status": "online"}),
            (2, "d1", {"firmware_version": "3.1.4", "network_type": "ethernet"}),
            (3, "d2", {"status": "online", "meeting_transcript": "Q3 numbers"}),
        ]
        for row_id, device, fields in reports:
            conn.execute(
                sa.text("INSERT INTO telemetry VALUES (:i, :d, :f)"),
                {"i": row_id, "d": device, "f": json.dumps(fields)},
            )
    yield engine
    engine.dispose()


def test_an_accepted_enrollment_of_an_undeployed_device_fails() -> None:
    accepted = {"device_id": "d9", "certificate_pem": "-----BEGIN CERTIFICATE-----"}
    with pytest.raises(CheckFailed, match="expected HTTP 403 with a reason, got 201"):
        common.status_with_reason(201, accepted, 403)
    common.status_with_reason(403, {"reason": "not deployed by an administrator"}, 403)


def test_a_stored_mac_or_unknown_field_is_found_in_the_rows(store: sa.Engine) -> None:
    places = stored_places(store)
    assert {where for where, _text in places} == {"table devices", "table telemetry"}
    with pytest.raises(CheckFailed, match=r"appears in \['table devices'\]"):
        common.secret_nowhere(MAC, places)
    with pytest.raises(CheckFailed, match=r"appears in \['table telemetry'\]"):
        common.secret_nowhere("meeting_transcript", places)
    common.secret_nowhere(SERIAL.lower(), places)  # a device that left nothing behind passes


def test_stored_rows_are_searched_case_blind(store: sa.Engine) -> None:
    with store.begin() as conn:
        conn.execute(sa.text("INSERT INTO devices VALUES ('d3', 'x', :s)"), {"s": SERIAL.upper()})
    with pytest.raises(CheckFailed):
        common.secret_nowhere(SERIAL.lower(), stored_places(store))


def test_the_loads_telemetry_is_selected_by_device_and_after_the_mark(store: sa.Engine) -> None:
    assert telemetry_since(store, 1, {"d1"}) == [
        {"firmware_version": "3.1.4", "network_type": "ethernet"}
    ]
    assert telemetry_since(store, 3, {"d1", "d2"}) == []


def test_the_loads_telemetry_must_be_stored_and_hold_only_listed_fields(store: sa.Engine) -> None:
    listed_telemetry_stored(telemetry_since(store, 0, {"d1"}))
    with pytest.raises(CheckFailed, match=r"outside DM-09's list: \['meeting_transcript'\]"):
        listed_telemetry_stored(telemetry_since(store, 0, {"d1", "d2"}))
    with pytest.raises(EmptySelection, match="selected no telemetry rows"):
        listed_telemetry_stored(telemetry_since(store, 3, {"d1"}))


@pytest.mark.parametrize(
    ("users", "enrolls", "failed", "telemetry", "ready"),
    [
        (300, 300, 0, 12, True),
        (300, 305, 5, 12, True),  # five enrollments failed once and succeeded on retry
        (200, 200, 0, 12, False),
        (300, 280, 0, 12, False),
        (300, 300, 4, 12, False),
        (300, 300, 0, 0, False),
    ],
)
def test_the_load_is_ready_once_every_device_enrolled_and_telemetry_flows(
    users: int, enrolls: int, failed: int, telemetry: int, ready: bool
) -> None:
    rows = [
        HistoryRow(T0, users, "", "Aggregated", enrolls + telemetry, failed),
        HistoryRow(T0, users, "HTTP", "dm enroll", enrolls, failed),
        HistoryRow(T0, users, "HTTP", "dm telemetry", telemetry, 0),
    ]
    assert load_is_ready(rows, 300) is ready
    assert not load_is_ready([], 300)
