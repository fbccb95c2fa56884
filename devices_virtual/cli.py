"""`roomtrust fleet run SCENARIO`: run a scenario with real virtual devices against the running
local stack (`roomtrust up`), with a progress bar; writes JSON lines and a summary to
reports/out/fleet/."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def run_scenario(
    scenario_file: Path,
    home: Path,
    out: Path,
    speed: float | None = None,
    show_progress: bool = True,
) -> tuple[dict[str, Any], Path, Path]:
    """Run one scenario file; returns (summary, records file, summary file)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from devices_virtual.driver.fleet import FleetRun
    from devices_virtual.driver.io import run_loop
    from devices_virtual.scenario import load_scenario
    from protocol.stack import read_stack

    scenario = load_scenario(scenario_file)
    if speed is not None:
        scenario = scenario.model_copy(
            update={"timing": scenario.timing.model_copy(update={"speed": speed})}
        )
    stack = read_stack(home.resolve())
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    records_file = out / f"{scenario.name}-{stamp}.jsonl"
    summary_file = out / f"{scenario.name}-{stamp}-summary.json"
    work_dir = home.resolve() / "fleet" / scenario.name

    with (
        records_file.open("w") as sink,
        Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not show_progress,
        ) as progress,
    ):
        tasks: dict[str, Any] = {}

        def on_progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        def log(record: dict[str, Any]) -> None:
            sink.write(json.dumps(record, default=str) + "\n")

        run = FleetRun(scenario, stack, work_dir, log=log, progress=on_progress)
        summary = run_loop(run.run())
        for connection in run.recorder.connections:
            log({"kind": "connection", **connection.as_dict()})
        log({"kind": "summary", **summary})
    summary_file.write_text(json.dumps(summary, indent=2, default=str))
    return summary, records_file, summary_file


@app.command("run")
def run(
    scenario: Path = typer.Argument(..., exists=True, dir_okay=False, help="scenarios/*.yaml"),
    home: Path = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME"),
    out: Path = typer.Option(Path("reports/out/fleet"), "--out"),
    speed: float | None = typer.Option(None, "--speed", help="override timing.speed"),
) -> None:
    """Run SCENARIO with real virtual devices against the running local stack."""
    from devices_virtual.scenario import ScenarioError
    from protocol.stack import StackError

    try:
        summary, records, summary_file = run_scenario(scenario, home, out, speed)
    except (ScenarioError, StackError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, fleet in summary["fleets"].items():
        typer.echo(
            f"fleet {name} (DM {fleet['dm_region']}): {fleet['enrolled']}/{fleet['deployed']} "
            f"deployed devices enrolled ({len(fleet['enrolled_models'])} models; "
            f"{fleet['dm_off_at_boot']} with DM switched off at boot), "
            f"{fleet['telemetry_accepted']} telemetry and {fleet['heartbeats_accepted']} "
            f"heartbeats accepted; {fleet['undeployed']} undeployed: "
            f"{fleet['undeployed_certificates']} certificates, {fleet['undeployed_reports']} reports; "
            f"boot contacts outside DM-12: {fleet['boot_unexpected_hosts'] or 'none'}"
        )
    meetings = summary["meetings"]
    typer.echo(
        f"meetings: {meetings['completed']}/{meetings['held']} completed, "
        f"{meetings['lobby_waits']} lobby waits, {meetings['rooms_muted']} rooms muted, "
        f"{meetings['guests_removed']} guests removed, {meetings['recording_notices']} "
        "recording notices"
    )
    for toggle in summary["dm_toggles"]:
        typer.echo(
            f"DM switched {'on' if toggle['enabled'] else 'off'} on {toggle['devices']} devices: "
            f"{toggle['dm_connections_after']} DM connections afterwards"
        )
    typer.echo(f"records: {records}\nsummary: {summary_file}")
