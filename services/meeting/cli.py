"""`roomtrust retention run`: the meeting retention engine from the shell (MT-13, MT-14, MT-15).

It opens each meeting region's own store and storage directory under the stack's home (the same
places the region processes use) and deletes what is past its retention date. `--now` moves the
engine's clock, to check what a later run would delete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import typer

from protocol.regions import MEETING_REGIONS
from services.common.clock import Clock, ManualClock, SystemClock
from services.common.db import make_engine, migrate, session_factory, store_location, transaction
from services.common.settings import load_settings
from services.meeting.domain import recording, retention

retention_app = typer.Typer(no_args_is_help=True, help="Retention of CDR, user data and logs.")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def parse_now(text: str | None) -> Clock:
    if text is None:
        return SystemClock()
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("--now must be an ISO 8601 date or time") from None
    return ManualClock(when if when.tzinfo else when.replace(tzinfo=dt.UTC))


def run_region_retention(home: Path, region: str, clock: Clock, days: int) -> dict[str, object]:
    settings = load_settings()
    url, schema = store_location(
        settings.database_url,
        home,
        "meeting",
        region,
        os.environ.get("ROOMTRUST_SCHEMA_PREFIX", ""),
    )
    engine = make_engine(url, schema)
    try:
        migrate(engine, MIGRATIONS)
        directory = home / "meeting" / region
        storage = recording.region_storage(directory)
        with transaction(session_factory(engine)) as session:
            report = retention.run(
                session, clock, storage=storage, log_dir=directory / "logs", days=days
            )
        return report.as_dict()
    finally:
        engine.dispose()


@retention_app.callback()
def retention_group() -> None:
    """Retention of CDR, user data and server logs (MT-13, MT-14, MT-15)."""


@retention_app.command("run")
def run(
    home: Path = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME"),
    region: list[str] = typer.Option(list(MEETING_REGIONS), "--region", help="meeting region(s)"),
    now: str | None = typer.Option(None, "--now", help="ISO time the engine takes as now"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Delete CDR and user data 180 days after contract end, and server logs older than 180 days."""
    clock = parse_now(now)
    days = load_settings().retention_days
    home = home.resolve()
    reports = {}
    for name in region:
        if name not in MEETING_REGIONS:
            raise typer.BadParameter(f"unknown meeting region {name!r}")
        if not (home / "meeting" / name).is_dir() and not load_settings().database_url:
            continue
        reports[name] = run_region_retention(home, name, clock, days)
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
        return
    for name, report in reports.items():
        typer.echo(
            f"meeting/{name}: {len(report['enterprises'])} enterprise(s) purged, "  # type: ignore[arg-type]
            f"{report['call_records']} CDR, {report['accounts']} account(s), "
            f"{report['recordings']} recording(s), {len(report['log_files'])} log file(s)"  # type: ignore[arg-type]
        )
