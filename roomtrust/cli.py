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


def _meeting_region(region: str) -> None:
    from protocol.regions import MEETING_REGIONS

    if region not in MEETING_REGIONS:
        raise typer.BadParameter(
            f"{region!r}: meeting regions are {', '.join(MEETING_REGIONS)}", param_hint="--region"
        )


def _argv(region: str, **options: object) -> list[str]:
    argv = ["--region", region]
    for name, value in options.items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


@serve_app.command("meeting")
def serve_meeting(
    region: str = typer.Option(..., "--region", help="the meeting region: na, sa, eu or asia"),
    home: Path | None = typer.Option(None, "--home", help="state directory [ROOMTRUST_HOME]"),
    port: int | None = typer.Option(None, "--port", help="listen port [ROOMTRUST_PORT]"),
) -> None:
    """One meeting region's signaling and API process; settings from ROOMTRUST_*, bad ones end
    it with exit code 2 and the reason."""
    from services.meeting.main import main

    _meeting_region(region)
    main(_argv(region, home=home, port=port))


@serve_app.command("relay")
def serve_relay(
    region: str = typer.Option(..., "--region", help="the meeting region it serves"),
    home: Path | None = typer.Option(None, "--home", help="state directory [ROOMTRUST_HOME]"),
    port: int | None = typer.Option(None, "--port", help="control API port [ROOMTRUST_PORT]"),
    media_port: int | None = typer.Option(
        None, "--media-port", help="UDP media port [ROOMTRUST_MEDIA_PORT]"
    ),
    name: str | None = typer.Option(None, "--name", help="relay name (default relay-<pid>)"),
) -> None:
    """One media relay of a meeting region; settings from ROOMTRUST_*."""
    from services.meeting.relay.server import main

    _meeting_region(region)
    argv = _argv(region, home=home, port=port, media_port=media_port, name=name)
    main(argv, prog="roomtrust serve relay")


@serve_app.command("pstn")
def serve_pstn(
    region: str = typer.Option(..., "--region", help="the meeting region it serves"),
    home: Path | None = typer.Option(None, "--home", help="state directory [ROOMTRUST_HOME]"),
    port: int | None = typer.Option(None, "--port", help="trunk API port [ROOMTRUST_PORT]"),
) -> None:
    """A meeting region's PSTN gateway; settings from ROOMTRUST_*."""
    from services.meeting.pstn.server import main

    _meeting_region(region)
    main(_argv(region, home=home, port=port), prog="roomtrust serve pstn")


@serve_app.command("interop")
def serve_interop(
    region: str = typer.Option(..., "--region", help="the meeting region it serves"),
    home: Path | None = typer.Option(None, "--home", help="state directory [ROOMTRUST_HOME]"),
    sip_port: int | None = typer.Option(
        None, "--sip-port", help="SIP TLS port [ROOMTRUST_SIP_PORT]"
    ),
    h323_port: int | None = typer.Option(
        None, "--h323-port", help="H.225.0 TLS port [ROOMTRUST_H323_PORT]"
    ),
) -> None:
    """A meeting region's SIP and H.323 interop gateway; settings from ROOMTRUST_*."""
    from services.meeting.interop.server import main

    _meeting_region(region)
    argv = _argv(region, home=home, sip_port=sip_port, h323_port=h323_port)
    main(argv, prog="roomtrust serve interop")


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
