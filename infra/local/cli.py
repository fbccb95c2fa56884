"""`roomtrust up|down|status`: the local stack's commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from infra.local import stack as local_stack

HOME_OPTION = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
console = Console()


def up(home: Path = HOME_OPTION) -> None:
    """Start every service region on 127.0.0.1 with TLS (or reuse the running stack)."""
    stack = local_stack.start(home)
    for ep in local_stack.endpoints(stack):
        console.print(f"{ep.service:8} {ep.region:5} {ep.url}  (pid {ep.pid})")
    console.print(f"stack file: {local_stack.stack_file(home.resolve())}")


def down(home: Path = HOME_OPTION) -> None:
    """Stop the local stack."""
    count = local_stack.stop(home)
    console.print(f"stopped {count} process(es)")


def status(home: Path = HOME_OPTION) -> None:
    """Show each region's health."""
    try:
        stack = local_stack.read_stack(home.resolve())
    except local_stack.StackError as exc:
        console.print(str(exc))
        raise typer.Exit(1) from exc
    table = Table("service", "region", "url", "pid", "health")
    failed = False
    for ep in local_stack.endpoints(stack):
        result = local_stack.health(ep)
        failed |= not result["ok"]
        detail = ", ".join(f"{k}={v}" for k, v in result.items() if k != "ok")
        table.add_row(
            ep.service,
            ep.region,
            ep.url,
            str(ep.pid),
            ("ok " if result["ok"] else "DOWN ") + detail,
        )
    console.print(table)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
