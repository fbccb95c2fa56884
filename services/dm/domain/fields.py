"""The data categories the DM service may store (DM-08, DM-09), as explicit allowlists.

The lists themselves are the wire contract's (`protocol.fields`); this module checks the values.
Anything outside them is refused with a 422 that names the field; nothing of the request is stored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from protocol import fields as contract
from protocol.fields import ACCOUNT_FIELDS, DEVICE_STATUSES, NETWORK_TYPES
from services.common.errors import Invalid

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SAFE_TEXT = re.compile(r"^[\w .:/@+()#,\-]{0,128}$")

__all__ = [
    "ACCOUNT_FIELDS",
    "DEVICE_STATUSES",
    "NETWORK_TYPES",
    "TELEMETRY_FIELDS",
    "normalise_mac",
    "validate_telemetry",
]


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


# The fields of the device management category that are not short plain text.
_CHECKS: dict[str, Callable[[str, Any], str]] = {
    "mac": _mac,
    "status": _choice(DEVICE_STATUSES),
    "network_type": _choice(NETWORK_TYPES),
    "ipv4_address": _ip(4),
    "ipv6_address": _ip(6),
}
assert set(_CHECKS) <= set(contract.TELEMETRY_FIELDS), "a check for a field outside DM-09"

# Device management category: the only fields a device may report, each with its check.
TELEMETRY_FIELDS: dict[str, Callable[[str, Any], str]] = {
    name: _CHECKS.get(name, _text) for name in contract.TELEMETRY_FIELDS
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
