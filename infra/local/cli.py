"""`roomtrust up|down|status`: the local stack's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from infra.local import stack as local_stack

HOME_OPTION = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
RELAYS_OPTION = typer.Option(
    2, "--relays", min=1, help="media relays per meeting region (2 or more fail over at once)"
)
console = Console()
RELAY_COLUMNS = ("received", "accepted", "forwarded")


def up(home: Path = HOME_OPTION, relays: int = RELAYS_OPTION) -> None:
    """Start every service region, media relays and PSTN gateways on 127.0.0.1 with TLS (or reuse
    the running stack)."""
    stack = local_stack.start(home, relays=relays, pstn=True)
    for ep in local_stack.endpoints(stack):
        console.print(f"{ep.service:8} {ep.region:5} {ep.url}  (pid {ep.pid})")
    for region, relays_of in stack.get("relays", {}).items():
        for name, info in relays_of.items():
            console.print(
                f"relay    {region:5} {name} udp/{info['media_port']}  (pid {info['pid']})"
            )
    console.print(f"stack file: {local_stack.stack_file(home.resolve())}")


def down(home: Path = HOME_OPTION) -> None:
    """Stop the local stack."""
    count = local_stack.stop(home)
    console.print(f"stopped {count} process(es)")


def relay_rows(home: Path, stack: dict[str, Any]) -> list[tuple[str, str, dict[str, int]]]:
    """(region, relay, counters) of every live relay of the stack's meeting regions."""
    if "meeting" not in stack["services"]:
        return []
    from services.meeting.relay.client import read_counters

    rows = []
    for region in stack["services"]["meeting"]:
        for name, counters in sorted(read_counters(home, region).items()):
            rows.append((region, name, counters))
    return rows


def status(home: Path = HOME_OPTION) -> None:
    """Show each region's health and each media relay's counters."""
    home = home.resolve()
    try:
        stack = local_stack.read_stack(home)
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
    rows = relay_rows(home, stack)
    if rows:
        relays = Table("region", "relay", *RELAY_COLUMNS, "dropped")
        for region, name, counters in rows:
            dropped = ", ".join(
                f"{k.removeprefix('dropped_')}={v}"
                for k, v in counters.items()
                if k.startswith("dropped_") and v
            )
            relays.add_row(region, name, *(str(counters[c]) for c in RELAY_COLUMNS), dropped or "0")
        console.print(relays)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
