"""The catalogue of virtual twins matches the DM service's managed models (DM-01)."""

from __future__ import annotations

from typing import Any

import pytest

from devices_virtual.models import CATALOGUE, get_model
from services.common.errors import Invalid
from services.dm.domain.catalogue import MANAGED_MODELS
from services.dm.domain.config_schema import SCHEMA, keys_for_model


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


# -- configuration keys (DM-13): the device's copy agrees with the DM service's schema -------------


def test_each_model_knows_exactly_the_keys_the_dm_service_sends_it() -> None:
    for name, model in CATALOGUE.items():
        sent = set(keys_for_model(dict.fromkeys(SCHEMA), name))
        assert model.config_keys == sent, name


SAMPLES: dict[str, tuple[list[Any], list[Any]]] = {  # key -> (valid values, invalid values)
    "audio.volume": ([0, 25, 100], [101, -1, True, "25", 2.5]),
    "audio.noise_suppression": ([True, False], [1, "yes", None]),
    "ntp.server": (["ntp.hq.example", "10.0.0.1"], ["NTP.example", "a b", "", 5]),
    "time_zone": (["Europe/Berlin", "UTC"], ["Mars/Olympus", ""]),
    "dm.heartbeat_s": ([10, 600], [9, 601, 30.0]),
    "dm.telemetry_s": ([60, 86400], [59, 86401]),
    "log.level": (["debug", "info", "warning", "error"], ["trace", "INFO", 1]),
    "device.name": (["Room 4.01 (north)", "x"], ["", "a" * 65, "<script>", 7]),
    "screensaver.timeout_s": ([30, 7200], [29, 7201]),
}


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_the_device_and_the_service_accept_and_refuse_the_same_values(key: str) -> None:
    valid, invalid = SAMPLES[key]
    model = get_model("MeetingBoard 86")
    for value in valid:
        assert model.check_setting(key, value) is None, (key, value)
        assert SCHEMA[key].check(f"values.{key}", value) == value
    for value in invalid:
        assert model.check_setting(key, value), (key, value)
        with pytest.raises(Invalid):
            SCHEMA[key].check(f"values.{key}", value)


def test_a_model_refuses_a_key_its_hardware_lacks_and_a_key_it_does_not_know() -> None:
    bar = get_model("MeetingBar A20")
    assert bar.check_setting("display.brightness", 50) == "MeetingBar A20 has no display"
    assert get_model("MeetingBoard 65").check_setting("display.brightness", 50) is None
    assert bar.check_setting("contacts.list", "x") == "unknown configuration key"
