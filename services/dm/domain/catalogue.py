"""The device models the DM service manages (DM-01)."""

from __future__ import annotations

from services.common.errors import Invalid

MANAGED_MODELS: tuple[str, ...] = (
    "MeetingBar A10",
    "MeetingBar A20",
    "MeetingBar A30",
    "MeetingBoard 65",
    "MeetingBoard 86",
    "DeskVision A24",
)


# What the service needs to know of each model to validate its configuration.
HAS_DISPLAY = frozenset({"MeetingBoard 65", "MeetingBoard 86", "DeskVision A24"})
HAS_TOUCH = HAS_DISPLAY


def check_model(model: str) -> str:
    if model not in MANAGED_MODELS:
        raise Invalid(
            f"unknown device model {model!r}; managed models are: {', '.join(MANAGED_MODELS)}",
            field="model",
        )
    return model
