"""The catalogue of managed device models (DM-01): each virtual twin's capabilities, firmware
track and boot time, and the configuration keys a device of the model knows (DM-13).

The names are exactly the DM service's model allowlist (`docs/dm-api.md`), so a deployment of a
virtual device is accepted as-is. The configuration keys are the device's own copy of the keys the
DM service lets an administrator set: a device checks every key it is given against its model and
refuses one it does not know, one its hardware lacks, or a value out of range.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A check returns None for a valid value, else the reason it is refused.
Check = Callable[[object], str | None]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
_HOST = re.compile(r"^[a-z0-9.-]{1,253}$")
_NAME = re.compile(r"^[\w .:/@+()#,\-]{1,64}$")


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _int(low: int, high: int) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"must be a whole number from {low} to {high}"

    return check


def _host(value: object) -> str | None:
    return None if isinstance(value, str) and _HOST.match(value) else "must be a host name"


def _zone(value: object) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown time zone"
    return None


def _level(value: object) -> str | None:
    return None if value in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"


def _name(value: object) -> str | None:
    if isinstance(value, str) and _NAME.match(value):
        return None
    return "must be plain text of 1 to 64 characters"


@dataclass(frozen=True, slots=True)
class ConfigKey:
    check: Check
    needs: str | None = None  # a capability of the model: "display" or "touch"


CONFIG_KEYS: Final[dict[str, ConfigKey]] = {
    "audio.volume": ConfigKey(_int(0, 100)),
    "audio.noise_suppression": ConfigKey(_bool),
    "camera.auto_framing": ConfigKey(_bool),
    "display.brightness": ConfigKey(_int(0, 100), "display"),
    "display.touch_enabled": ConfigKey(_bool, "touch"),
    "screensaver.timeout_s": ConfigKey(_int(30, 7200)),
    "connectivity_check.enabled": ConfigKey(_bool),
    "network.proxy_test_enabled": ConfigKey(_bool),
    "ntp.server": ConfigKey(_host),
    "time_zone": ConfigKey(_zone),
    "dm.heartbeat_s": ConfigKey(_int(10, 600)),
    "dm.telemetry_s": ConfigKey(_int(60, 86400)),
    "firmware.auto_update": ConfigKey(_bool),
    "log.level": ConfigKey(_level),
    "device.name": ConfigKey(_name),
}


@dataclass(frozen=True, slots=True)
class DeviceModel:
    name: str
    family: str
    cameras: int
    display_inches: float | None
    touch: bool
    microphones: int
    firmware_track: str
    boot_seconds: float
    software_version: str
    firmware_version: str

    @property
    def has_camera(self) -> bool:
        return self.cameras > 0

    @property
    def has_display(self) -> bool:
        return self.display_inches is not None

    @property
    def components(self) -> tuple[str, ...]:
        """The hardware parts that can fail and be reported as health events."""
        parts: list[str] = []
        if self.has_camera:
            parts.append("camera")
        if self.microphones:
            parts.append("microphone")
        if self.has_display:
            parts.append("display")
        return tuple(parts)

    def has(self, capability: str) -> bool:
        return {"display": self.has_display, "touch": self.touch}.get(capability, False)

    @property
    def config_keys(self) -> frozenset[str]:
        """The configuration keys a device of this model knows."""
        return frozenset(
            name for name, key in CONFIG_KEYS.items() if key.needs is None or self.has(key.needs)
        )

    def check_setting(self, name: str, value: object) -> str | None:
        """Why a device of this model refuses `name` set to `value`; None if it takes it."""
        key = CONFIG_KEYS.get(name)
        if key is None:
            return "unknown configuration key"
        if key.needs is not None and not self.has(key.needs):
            return f"{self.name} has no {key.needs}"
        return key.check(value)


MODELS: tuple[DeviceModel, ...] = (
    DeviceModel(
        "MeetingBar A10", "MeetingBar", 1, None, False, 8, "bar-a", 45.0, "10.2.1", "262.410.0.5"
    ),
    DeviceModel(
        "MeetingBar A20", "MeetingBar", 1, None, False, 8, "bar-a", 50.0, "10.2.1", "264.410.0.5"
    ),
    DeviceModel(
        "MeetingBar A30", "MeetingBar", 2, None, False, 8, "bar-a", 55.0, "10.2.1", "266.410.0.5"
    ),
    DeviceModel(
        "MeetingBoard 65", "MeetingBoard", 1, 65.0, True, 8, "board", 80.0, "10.2.1", "272.410.0.3"
    ),
    DeviceModel(
        "MeetingBoard 86", "MeetingBoard", 1, 86.0, True, 8, "board", 90.0, "10.2.1", "273.410.0.3"
    ),
    DeviceModel(
        "DeskVision A24", "DeskVision", 1, 23.8, True, 4, "desk", 40.0, "10.1.7", "291.410.0.2"
    ),
)

CATALOGUE: dict[str, DeviceModel] = {m.name: m for m in MODELS}


def get_model(name: str) -> DeviceModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(
            f"unknown device model {name!r}; models are: {', '.join(CATALOGUE)}"
        ) from None
