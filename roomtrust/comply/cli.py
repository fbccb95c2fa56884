"""`roomtrust comply`: the command line of the compliance run."""

from __future__ import annotations

from pathlib import Path

import typer

from roomtrust.comply.targets import TargetError, parse_target

HOME_OPTION = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")


def comply(
    target: list[str] = typer.Option(
        ["local"],
        "--target",
        help="local, graph[:DIR], sim[:DIR] or a target file (JSON) of a deployed region; repeatable",
    ),
    tags: str = typer.Option(None, "--tags", help='tag expression, e.g. "DM-04 or MT-06"'),
    allow_unchecked: bool = typer.Option(
        False, "--allow-unchecked", help="exit 0 even when claims are UNCHECKED"
    ),
    list_only: bool = typer.Option(
        False, "--list", help="print each claim ID with the scenarios that check it, and exit"
    ),
    out: Path = typer.Option(Path("reports/out/compliance"), "--out"),
    home: Path = HOME_OPTION,
) -> None:
    """Check every claim of claims.md against a target; write reports/out/compliance/."""
    from roomtrust.comply.runner import list_claims, run_comply

    if list_only:
        typer.echo(list_claims())
        return
    try:
        targets = [parse_target(value, home) for value in target]
        run = run_comply(targets, out=out, tags=tags, allow_unchecked=allow_unchecked)
    except (TargetError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for verdict in run.verdicts:
        if verdict.verdict != "PASS":
            reason = verdict.reasons[0] if verdict.reasons else ""
            typer.echo(f"{verdict.id:6} {verdict.verdict:15} {reason[:160]}")
    figures = ", ".join(f"{name} {value}" for name, value in run.counts.items())
    typer.echo(f"report: {run.report}")
    typer.echo(f"claims: {figures}")
    raise typer.Exit(run.exit_code)


def register(app: typer.Typer) -> None:
    app.command()(comply)
