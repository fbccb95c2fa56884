"""The one command line: `roomtrust up|down|status|...`; each area adds its own sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer

from devices_virtual.cli import app as fleet_app
from infra.cli import app as infra_app
from load.cli import app as load_app
from roomtrust.comply.cli import register as register_comply
from roomtrust.stack.cli import register as register_stack
from services.dm.cli import config_app, diag_app, rollout_app
from services.meeting.cli import retention_app
from sim.cli import app as sim_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
register_stack(app)
register_comply(app)
app.add_typer(config_app, name="config")
app.add_typer(diag_app, name="diag")
app.add_typer(rollout_app, name="rollout")
app.add_typer(retention_app, name="retention")
app.add_typer(infra_app, name="infra")
app.add_typer(sim_app, name="sim")
app.add_typer(fleet_app, name="fleet")
app.add_typer(load_app, name="load")
serve_app = typer.Typer(no_args_is_help=True, help="Run one service region in the foreground.")
app.add_typer(serve_app, name="serve")


@serve_app.command("dm")
def serve_dm(
    region: str = typer.Option(..., "--region", help="the DM region: us, eu or au"),
    home: Path | None = typer.Option(None, "--home", help="state directory [ROOMTRUST_HOME]"),
    port: int | None = typer.Option(None, "--port", help="listen port [ROOMTRUST_PORT]"),
) -> None:
    """One DM region process, what the container image runs; its settings come from
    ROOMTRUST_* and bad ones end it with exit code 2 and the reason."""
    from protocol.regions import DM_REGIONS
    from services.dm.main import main

    if region not in DM_REGIONS:
        raise typer.BadParameter(
            f"{region!r}: DM regions are {', '.join(DM_REGIONS)}", param_hint="--region"
        )
    argv = ["--region", region]
    argv += ["--home", str(home)] if home is not None else []
    argv += ["--port", str(port)] if port is not None else []
    main(argv)


@app.command()
def demo(
    home: Path = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME"),
    out: Path = typer.Option(Path("reports/out"), "--out"),
    comply: bool = typer.Option(
        True, "--comply/--no-comply", help="end with the compliance report of every claim"
    ),
) -> None:
    """Start the local stack, run a small scenario end to end, write reports/out/."""
    from roomtrust.demo import run_demo

    summary = run_demo(home, out)
    for row in summary["dm"]:
        typer.echo(
            f"DM {row['region']}: {row['devices_enrolled']} enrolled, "
            f"{row['telemetry_accepted']} telemetry accepted, "
            f"undeployed device refused ({row['undeployed_enrollment_status']})"
        )
    typer.echo(f"summary: {summary['summary_file']}")
    if comply:
        from roomtrust.comply.runner import comply_local

        typer.echo("checking every claim of claims.md (local stack and infra graphs)...")
        run = comply_local(home, out / "compliance", graph=True)
        counts = run.counts
        typer.echo(f"compliance report: {run.report}")
        typer.echo(
            f"claims: PASS {counts.get('PASS', 0)}, FAIL {counts.get('FAIL', 0)}, "
            f"UNCHECKED {counts.get('UNCHECKED', 0)}"
        )
    typer.echo("the stack keeps running; stop it with `roomtrust down`")
