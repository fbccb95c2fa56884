"""`roomtrust config push` and `roomtrust diag request` against the live stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from roomtrust.cli import app
from roomtrust.testing import region_endpoint
from services.dm.client import DeviceCredential, DmAdmin

PASSWORD = "correct horse battery"


def test_config_push_and_diag_request(
    live_stack: dict[str, Any], make_device: Callable[..., DeviceCredential]
) -> None:
    url, ca = region_endpoint(live_stack, "dm", "eu")
    with DmAdmin(url, ca) as admin:
        admin.register("CLI Corp", "cli@example.com", PASSWORD)
        admin.login("cli@example.com", PASSWORD)
        site = admin.create_site("Oslo", "Europe/Oslo")
        device = make_device("DeskVision A24")
        device_id = admin.deploy(device.mac, device.serial_number, device.model, site)
    env = {"ROOMTRUST_ADMIN_EMAIL": "cli@example.com", "ROOMTRUST_ADMIN_PASSWORD": PASSWORD}
    common = ["--region", "eu", "--home", live_stack["home"]]
    runner = CliRunner()
    pushed = runner.invoke(
        app,
        ["config", "push", "desk", "--set", "display.brightness=40", "--site", site, *common],
        env=env,
    )
    assert pushed.exit_code == 0, pushed.output
    assert "desk@1: 1 device(s) targeted" in pushed.output
    refused = runner.invoke(
        app, ["config", "push", "desk", "--set", "user.email=x", "--site", site, *common], env=env
    )
    assert refused.exit_code == 1
    asked = runner.invoke(app, ["diag", "request", device_id, *common], env=env)
    assert asked.exit_code == 0 and "queued" in asked.output, asked.output
