"""The catalogue of managed device models (DM-01): each virtual twin's capabilities, firmware
track and boot time.

The names are exactly the DM service's model allowlist (`docs/dm-api.md`), so a deployment of a
virtual device is accepted as-is.
"""

from __future__ import annotations

from dataclasses import dataclass


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
