"""The DM-09 telemetry allowlist."""

from __future__ import annotations

import pytest

from services.common.errors import Invalid
from services.dm.domain.fields import TELEMETRY_FIELDS, normalise_mac, validate_telemetry


def test_allowlisted_fields_pass_and_are_normalised() -> None:
    clean = validate_telemetry(
        {"mac": "02-AA-BB-CC-DD-EE", "network_type": "wifi", "ipv6_address": "2001:db8::1"}
    )
    assert clean == {
        "mac": "02:aa:bb:cc:dd:ee",
        "network_type": "wifi",
        "ipv6_address": "2001:db8::1",
    }


@pytest.mark.parametrize(
    "field", ["chat_text", "meeting_title", "participant_email", "recording", "contacts", "files"]
)
def test_end_user_data_is_refused_by_name(field: str) -> None:
    with pytest.raises(Invalid) as caught:
        validate_telemetry({"status": "online", field: "x"})
    assert caught.value.field == field
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ipv4_address", "2001:db8::1"),
        ("ipv6_address", "10.0.0.1"),
        ("network_type", "pigeon"),
        ("status", "happy"),
        ("device_name", "x" * 200),
        ("firmware_version", {"nested": 1}),
    ],
)
def test_bad_values_are_refused_with_their_field(field: str, value: object) -> None:
    with pytest.raises(Invalid) as caught:
        validate_telemetry({field: value})
    assert caught.value.field == field


def test_empty_report_is_refused() -> None:
    with pytest.raises(Invalid):
        validate_telemetry({})


def test_allowlist_holds_only_device_management_fields() -> None:
    assert set(TELEMETRY_FIELDS) == {
        "device_name",
        "mac",
        "serial_number",
        "server_address",
        "software_version",
        "firmware_version",
        "status",
        "configuration_version",
        "network_id",
        "network_type",
        "ipv4_address",
        "ipv6_address",
        "time_zone",
    }


def test_mac_must_have_six_octets() -> None:
    with pytest.raises(Invalid):
        normalise_mac("02:aa:bb")
