"""The data categories the DM service may store (DM-08, DM-09), as explicit allowlists.

Anything outside them is refused with a 422 that names the field; nothing of the request is stored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from services.common.errors import Invalid

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SAFE_TEXT = re.compile(r"^[\w .:/@+()#,\-]{0,128}$")

# Account management: what an administrator record may hold.
ACCOUNT_FIELDS = ("email", "password", "first_name", "last_name", "phone")

NETWORK_TYPES = ("ethernet", "wifi", "cellular")
DEVICE_STATUSES = ("online", "idle", "in_call", "upgrading", "rebooting", "fault")


def normalise_mac(value: str, field: str = "mac") -> str:
    mac = value.strip().lower().replace("-", ":")
    if not MAC.match(mac):
        raise Invalid(f"not a MAC address (aa:bb:cc:dd:ee:ff): {value!r}", field=field)
    return mac


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _SAFE_TEXT.match(value):
        raise Invalid("expected short plain text (at most 128 characters)", field=field)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        if value not in options:
            raise Invalid(f"must be one of {', '.join(options)}", field=field)
        return str(value)

    return check


def _ip(version: int) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        try:
            address = ipaddress.ip_address(value)
        except (ValueError, TypeError):
            raise Invalid(f"not an IPv{version} address", field=field) from None
        if address.version != version:
            raise Invalid(f"not an IPv{version} address", field=field)
        return str(address)

    return check


def _mac(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("not a MAC address", field=field)
    return normalise_mac(value, field)


# Device management category: the only fields a device may report.
TELEMETRY_FIELDS: dict[str, Callable[[str, Any], str]] = {
    "device_name": _text,
    "mac": _mac,
    "serial_number": _text,
    "server_address": _text,
    "software_version": _text,
    "firmware_version": _text,
    "status": _choice(DEVICE_STATUSES),
    "configuration_version": _text,
    "network_id": _text,
    "network_type": _choice(NETWORK_TYPES),
    "ipv4_address": _ip(4),
    "ipv6_address": _ip(6),
    "time_zone": _text,
}


def validate_telemetry(payload: Mapping[str, Any]) -> dict[str, str]:
    """Check a telemetry report against the allowlist; returns the normalised fields."""
    if not isinstance(payload, Mapping):
        raise Invalid("telemetry must be a JSON object", field=None)
    if not payload:
        raise Invalid("telemetry report is empty", field=None)
    clean: dict[str, str] = {}
    for field in sorted(payload):
        check = TELEMETRY_FIELDS.get(field)
        if check is None:
            raise Invalid(
                f"{field!r} is not a device-management field the service may store (DM-09)",
                field=field,
            )
        clean[field] = check(field, payload[field])
    return clean
