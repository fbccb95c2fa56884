"""The configuration keys an administrator may set, with their types and the models they apply to.

A key outside this schema is refused with a 422 naming it; a key that would carry end-user data
(contacts, meeting content, chat, files, user accounts) is refused with a reason citing DM-08.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.errors import Invalid
from services.dm.domain.catalogue import HAS_DISPLAY, HAS_TOUCH, MANAGED_MODELS

_END_USER_DATA = re.compile(
    r"contact|user|email|meeting|chat|message|file|transcript|recording|calendar|password|phone",
    re.IGNORECASE,
)
_HOST = re.compile(r"^[a-z0-9.-]{1,253}$")
_NAME = re.compile(r"^[\w .:/@+()#,\-]{1,64}$")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Key:
    check: Callable[[str, Any], object]
    models: frozenset[str] = frozenset(MANAGED_MODELS)


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false", field=field)
    return value


def _int(low: int, high: int) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise Invalid(f"must be a whole number from {low} to {high}", field=field)
        return value

    return check


def _host(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _HOST.match(value):
        raise Invalid("must be a host name", field=field)
    return value


def _zone(field: str, value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {value!r}", field=field) from None
    return str(value)


def _level(field: str, value: Any) -> str:
    if value not in LOG_LEVELS:
        raise Invalid(f"must be one of {', '.join(LOG_LEVELS)}", field=field)
    return str(value)


def _name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise Invalid("must be plain text of 1 to 64 characters", field=field)
    return value


SCHEMA: dict[str, Key] = {
    "audio.volume": Key(_int(0, 100)),
    "audio.noise_suppression": Key(_bool),
    "camera.auto_framing": Key(_bool),
    "display.brightness": Key(_int(0, 100), HAS_DISPLAY),
    "display.touch_enabled": Key(_bool, HAS_TOUCH),
    "screensaver.timeout_s": Key(_int(30, 7200)),
    "connectivity_check.enabled": Key(_bool),
    "network.proxy_test_enabled": Key(_bool),
    "ntp.server": Key(_host),
    "time_zone": Key(_zone),
    "dm.heartbeat_s": Key(_int(10, 600)),
    "dm.telemetry_s": Key(_int(60, 86400)),
    "firmware.auto_update": Key(_bool),
    "log.level": Key(_level),
    "device.name": Key(_name),
}


def validate_values(values: Mapping[str, Any]) -> dict[str, object]:
    """Check a profile's values against the schema; returns them unchanged when valid."""
    if not values:
        raise Invalid("a profile needs at least one key", field="values")
    clean: dict[str, object] = {}
    for key in sorted(values):
        field = f"values.{key}"
        spec = SCHEMA.get(key)
        if spec is None:
            if _END_USER_DATA.search(key):
                raise Invalid(
                    f"{key!r} would carry end-user data; device configuration never does (DM-08)",
                    field=field,
                )
            raise Invalid(f"unknown configuration key {key!r}", field=field)
        clean[key] = spec.check(field, values[key])
    return clean


def keys_for_model(values: Mapping[str, object], model: str) -> dict[str, object]:
    """The part of a profile that applies to one model (display keys skip a MeetingBar)."""
    return {k: v for k, v in values.items() if model in SCHEMA[k].models}
