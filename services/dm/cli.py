"""`roomtrust config push` and `roomtrust diag request|fetch`: the DM admin API from the shell.

They talk to a region of the running local stack (or any DM URL with its CA bundle) as an
administrator whose email and password come from options or ROOMTRUST_ADMIN_EMAIL/_PASSWORD.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from infra.local.stack import read_stack
from services.dm.client import DmAdmin, DmError

config_app = typer.Typer(no_args_is_help=True, help="Bulk configuration profiles.")
diag_app = typer.Typer(no_args_is_help=True, help="Remote diagnosis.")

REGION = typer.Option("us", "--region", help="DM region of the local stack")
HOME = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
EMAIL = typer.Option(..., "--email", envvar="ROOMTRUST_ADMIN_EMAIL")
PASSWORD = typer.Option(..., "--password", envvar="ROOMTRUST_ADMIN_PASSWORD", hide_input=True)


def admin_session(home: Path, region: str, email: str, password: str) -> DmAdmin:
    info = read_stack(home.resolve())["services"]["dm"][region]
    admin = DmAdmin(info["url"], info["ca_file"])
    admin.login(email, password)
    return admin


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def fail(exc: DmError) -> typer.Exit:
    typer.echo(
        f"refused ({exc.status}): {exc.body.get('field')}: {exc.body.get('reason')}", err=True
    )
    return typer.Exit(1)


@config_app.command("push")
def config_push(
    name: str = typer.Argument(..., help="profile name; each push makes a new version"),
    values: list[str] = typer.Option(..., "--set", help="key=value, e.g. audio.volume=40"),
    site: str | None = typer.Option(None, "--site", help="target site ID"),
    model: str | None = typer.Option(None, "--model", help="target model"),
    tag: str | None = typer.Option(None, "--tag", help="target tag"),
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Create a new version of a profile and push it to every matching device."""
    pairs = dict(item.split("=", 1) for item in values if "=" in item)
    target = {k: v for k, v in {"site_id": site, "model": model, "tag": tag}.items() if v}
    with admin_session(home, region, email, password) as admin:
        try:
            profile = admin.create_profile(
                name, {k: parse_value(v) for k, v in pairs.items()}, target
            )
            result = admin.push_profile(profile["profile_id"])
        except DmError as exc:
            raise fail(exc) from exc
    typer.echo(
        f"{name}@{profile['version']}: {result['devices']} device(s) targeted, "
        f"{result['delivered_now']} online now; the rest receive it when they reconnect"
    )


@diag_app.command("request")
def diag_request(
    device_id: str,
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Ask a device for a diagnostics bundle over its command channel."""
    with admin_session(home, region, email, password) as admin:
        try:
            result = admin.request_diagnostics(device_id)
        except DmError as exc:
            raise fail(exc) from exc
    typer.echo(f"command {result['command_id']} queued (delivered now: {result['delivered_now']})")


@diag_app.command("fetch")
def diag_fetch(
    bundle_id: str,
    out: Path = typer.Option(Path("."), "--out"),
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Download a diagnostics bundle (administrators of the device's enterprise only)."""
    with admin_session(home, region, email, password) as admin:
        try:
            data = admin.fetch_diagnostics(bundle_id)
        except DmError as exc:
            raise fail(exc) from exc
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"diagnostics-{bundle_id}.json"
    path.write_bytes(data)
    typer.echo(str(path))
