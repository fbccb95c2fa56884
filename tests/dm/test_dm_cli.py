"""`roomtrust config push` and `roomtrust diag request` against the live stack."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import CliRunner

from protocol.stack import Stack
from roomtrust.cli import app
from services.dm.client import DeviceCredential, DmAdmin

PASSWORD = "correct horse battery"


def test_config_push_and_diag_request(
    live_stack: Stack, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "eu")
    url, ca = endpoint.url, endpoint.ca_file
    with DmAdmin(url, ca) as admin:
        admin.register("CLI Corp", "cli@example.com", PASSWORD)
        admin.login("cli@example.com", PASSWORD)
        site = admin.create_site("Oslo", "Europe/Oslo")
        device = make_device("DeskVision A24")
        device_id = admin.deploy(device.mac, device.serial_number, device.model, site)
    env = {"ROOMTRUST_ADMIN_EMAIL": "cli@example.com", "ROOMTRUST_ADMIN_PASSWORD": PASSWORD}
    common = ["--region", "eu", "--home", str(live_stack.home)]
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
