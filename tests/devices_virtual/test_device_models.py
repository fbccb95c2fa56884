"""The catalogue of virtual twins matches the DM service's managed models (DM-01)."""

from __future__ import annotations

import pytest

from devices_virtual.models import CATALOGUE, get_model
from services.dm.domain.catalogue import MANAGED_MODELS


def test_catalogue_names_are_the_dm_allowlist() -> None:
    assert tuple(CATALOGUE) == MANAGED_MODELS


def test_each_model_has_its_own_capabilities() -> None:
    assert get_model("MeetingBar A10").components == ("camera", "microphone")
    assert get_model("MeetingBoard 86").components == ("camera", "microphone", "display")
    assert get_model("MeetingBoard 65").touch and not get_model("MeetingBar A30").touch
    assert get_model("MeetingBar A30").cameras == 2
    assert len({(m.boot_seconds, m.firmware_version) for m in CATALOGUE.values()}) == 6


def test_unknown_model_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="MeetingBar A99"):
        get_model("MeetingBar A99")
