"""Fixtures for DM tests: an administrator with a site in region us, and device makers."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from roomtrust.testing import region_endpoint
from services.dm.client import DeviceCredential, DmAdmin

_counter = itertools.count(1)


def new_mac() -> str:
    raw = secrets.token_bytes(5)
    return "02:" + ":".join(f"{b:02x}" for b in raw)


@pytest.fixture
def dm_admin(live_stack: dict[str, Any]) -> Iterator[DmAdmin]:
    url, ca = region_endpoint(live_stack, "dm", "us")
    admin = DmAdmin(url, ca)
    email = f"admin{next(_counter)}-{secrets.token_hex(3)}@example.com"
    admin.register("Example Corp", email, "correct horse battery")
    admin.login(email, "correct horse battery")
    admin.site_id = admin.create_site("HQ", "Europe/Berlin")  # type: ignore[attr-defined]
    yield admin
    admin.close()


@pytest.fixture
def make_device(tmp_path: Path) -> Callable[..., DeviceCredential]:
    def make(model: str = "MeetingBar A30", mac: str | None = None) -> DeviceCredential:
        return DeviceCredential(
            mac=mac or new_mac(),
            serial_number=f"SN{secrets.token_hex(5).upper()}",
            model=model,
            directory=tmp_path / "devices",
        )

    return make


@pytest.fixture
def enrolled_device(
    live_stack: dict[str, Any], dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> DeviceCredential:
    device = make_device()
    device.device_id = dm_admin.deploy(
        device.mac,
        device.serial_number,
        device.model,
        dm_admin.site_id,  # type: ignore[attr-defined]
    )
    url, ca = region_endpoint(live_stack, "dm", "us")
    assert device.enroll(url, ca).status_code == 201
    return device
