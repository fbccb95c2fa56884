"""`roomtrust config push`, `roomtrust diag request|fetch` and `roomtrust rollout ...`: the DM
admin API from the shell.

They talk to a region of the running local stack as an administrator whose email and password come
from options or ROOMTRUST_ADMIN_EMAIL/_PASSWORD. `rollout` uploads firmware images to the catalogue,
creates staged rollouts, controls them (start, pause, resume, abort, rollback) and shows their
progress per wave as bars.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from protocol.stack import StackError, read_stack
from services.dm.client import DmAdmin, DmError

config_app = typer.Typer(no_args_is_help=True, help="Bulk configuration profiles.")
diag_app = typer.Typer(no_args_is_help=True, help="Remote diagnosis.")
rollout_app = typer.Typer(no_args_is_help=True, help="Firmware images and staged rollouts.")

REGION = typer.Option("us", "--region", help="DM region of the local stack")
HOME = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
EMAIL = typer.Option(..., "--email", envvar="ROOMTRUST_ADMIN_EMAIL")
PASSWORD = typer.Option(..., "--password", envvar="ROOMTRUST_ADMIN_PASSWORD", hide_input=True)


@contextmanager
def admin_session(home: Path, region: str, email: str, password: str) -> Iterator[DmAdmin]:
    """A logged-in administrator of a region; a refusal from the region, the login's included,
    is printed with its status, field and reason and ends the command with exit code 1."""
    try:
        endpoint = read_stack(home.resolve()).endpoint("dm", region)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with DmAdmin(endpoint.url, endpoint.ca_file) as admin:
            admin.login(email, password)
            yield admin
    except DmError as exc:
        typer.echo(
            f"refused ({exc.status}): {exc.body.get('field')}: {exc.body.get('reason')}", err=True
        )
        raise typer.Exit(1) from exc


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


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
        profile = admin.create_profile(name, {k: parse_value(v) for k, v in pairs.items()}, target)
        result = admin.push_profile(profile["profile_id"])
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
        result = admin.request_diagnostics(device_id)
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
        data = admin.fetch_diagnostics(bundle_id)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"diagnostics-{bundle_id}.json"
    path.write_bytes(data)
    typer.echo(str(path))


# -- rollouts -------------------------------------------------------------------------------------

_WINDOW = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})(?:@([0-6](?:,[0-6])*))?$")
BAR_WIDTH = 30


def parse_amount(text: str, option: str) -> dict[str, float | int]:
    """`10%` -> a percentage, `25` -> a count of devices."""
    try:
        if text.endswith("%"):
            return {"percent": float(text[:-1])}
        return {"count": int(text)}
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: give a count (25) or a percentage (10%)", param_hint=option
        ) from None


def parse_window(text: str) -> dict[str, Any]:
    """`02:00-04:00` or `22:00-04:00@4` (weekdays, Monday 0, of the day the window opens)."""
    match = _WINDOW.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r}: use HH:MM-HH:MM[@0,1,...]", param_hint="--window")
    start, end, days = match.groups()
    window: dict[str, Any] = {"start": start.zfill(5), "end": end.zfill(5)}
    if days:
        window["weekdays"] = [int(d) for d in days.split(",")]
    return window


def bar(part: int, whole: int, width: int = BAR_WIDTH) -> str:
    filled = round(width * part / whole) if whole else width
    return "#" * filled + "." * (width - filled)


def render_status(status: dict[str, Any]) -> str:
    """The rollout's state and one progress bar per wave."""
    image = status["image"]
    lines = [
        f"rollout {status['rollout_id']} ({status['name']}): {image['model']} {image['version']}",
        f"state: {status['state']}" + (f" ({status['reason']})" if status["reason"] else ""),
    ]
    for wave in status["waves"]:
        done = wave["updated"] + wave["failed"] + wave["rolled_back"] + wave["cancelled"]
        lines.append(
            f"wave {wave['wave']} [{bar(done, wave['size'])}] {wave['updated']}/{wave['size']} "
            f"updated, {wave['failed']} failed, {wave['in_progress']} in progress, "
            f"{wave['waiting']} waiting ({wave['state']})"
        )
    totals = status["totals"]
    lines.append(
        f"total [{bar(totals['updated'] + totals['failed'], totals['size'])}] "
        f"{totals['updated']}/{totals['size']} updated, {totals['failed']} failed"
    )
    return "\n".join(lines)


@rollout_app.command("upload")
def rollout_upload(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="the image file"),
    model: str = typer.Option(..., "--model", help="the device model the image is for"),
    version: str = typer.Option(..., "--version", help="its version, like 264.411.0.0"),
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Add an image to the catalogue; the region signs it with its release key."""
    with admin_session(home, region, email, password) as admin:
        result = admin.upload_image(model, version, image.read_bytes())
    typer.echo(
        f"image {result['image_id']}: {result['model']} {result['version']}, "
        f"{result['size']} bytes, signed ({result['signature']})"
    )


@rollout_app.command("images")
def rollout_images(
    region: str = REGION, home: Path = HOME, email: str = EMAIL, password: str = PASSWORD
) -> None:
    """List the firmware catalogue."""
    with admin_session(home, region, email, password) as admin:
        for item in admin.images():
            typer.echo(f"{item['image_id']}  {item['model']}  {item['version']}  {item['size']}")


@rollout_app.command("create")
def rollout_create(
    image_id: str = typer.Argument(..., help="the image to roll out"),
    waves: list[str] = typer.Option(
        ..., "--wave", help="a wave: a count (25) or a percentage of the targets (10%)"
    ),
    name: str | None = typer.Option(None, "--name"),
    sites: list[str] = typer.Option([], "--site", help="only devices of this site"),
    tags: list[str] = typer.Option([], "--tag", help="only devices with this tag"),
    versions: list[str] = typer.Option([], "--from-version", help="only devices on this version"),
    success: float = typer.Option(100.0, "--success", help="% updated before the next wave"),
    threshold: str = typer.Option("1", "--error-threshold", help="failures per wave: 3 or 5%"),
    on_error: str = typer.Option("pause", "--on-error", help="pause or abort"),
    alert_window: float = typer.Option(
        10.0, "--alert-window", help="minutes after updating in which an alert is a failure"
    ),
    windows: list[str] = typer.Option(
        [], "--window", help="maintenance window in each site's time zone: 02:00-04:00[@0,1,...]"
    ),
    download_cap: int | None = typer.Option(None, "--download-cap", help="downloads at once"),
    timeout: float | None = typer.Option(None, "--update-timeout", help="minutes per device"),
    start: bool = typer.Option(False, "--start", help="start it at once"),
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Create a staged rollout (and optionally start it)."""
    plan: dict[str, Any] = {
        "waves": [parse_amount(w, "--wave") for w in waves],
        "target": {"site_ids": sites, "tags": tags, "versions": versions},
        "success_percent": success,
        "error_threshold": parse_amount(threshold, "--error-threshold"),
        "on_error": on_error,
        "alert_window_minutes": alert_window,
        "windows": [parse_window(w) for w in windows],
        "download_cap": download_cap,
        "update_timeout_minutes": timeout,
    }
    if name:
        plan["name"] = name
    with admin_session(home, region, email, password) as admin:
        status = admin.create_rollout(image_id, **plan)
        if start:
            status = admin.control_rollout(status["rollout_id"], "start")
    typer.echo(render_status(status))


ROLLOUT_CONTROLS = {
    "start": "Start a created rollout: its first wave begins.",
    "pause": "Pause: nothing new starts; updates already running finish.",
    "resume": "Resume a paused rollout, accepting the failures so far.",
    "abort": "Abort: every device still waiting is cancelled.",
    "rollback": "Send every device that installed the new version back to the version it ran before.",
}


def _register_control(op: str, help_text: str) -> None:
    """One `roomtrust rollout <op> ROLLOUT_ID` command per control operation of the admin API."""

    def control(
        rollout_id: str,
        region: str = REGION,
        home: Path = HOME,
        email: str = EMAIL,
        password: str = PASSWORD,
    ) -> None:
        with admin_session(home, region, email, password) as admin:
            status = admin.control_rollout(rollout_id, op)
        typer.echo(render_status(status))

    rollout_app.command(op, help=help_text)(control)


for _op, _help in ROLLOUT_CONTROLS.items():
    _register_control(_op, _help)


@rollout_app.command("status")
def rollout_status(
    rollout_id: str,
    watch: bool = typer.Option(False, "--watch", help="follow it until it stops running"),
    interval: float = typer.Option(2.0, "--interval", help="seconds between looks"),
    region: str = REGION,
    home: Path = HOME,
    email: str = EMAIL,
    password: str = PASSWORD,
) -> None:
    """Show a rollout's state and its progress per wave."""
    with admin_session(home, region, email, password) as admin:
        while True:
            status = admin.rollout(rollout_id)
            typer.echo(render_status(status))
            if not watch or status["state"] != "running":
                return
            time.sleep(interval)
            typer.echo("")
