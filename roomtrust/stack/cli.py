"""`roomtrust up|down|status`: the local stack's commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from protocol.stack import Stack, StackError, read_stack, stack_file
from roomtrust.stack import launcher

HOME_OPTION = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
RELAYS_OPTION = typer.Option(
    2, "--relays", min=1, help="media relays per meeting region (2 or more fail over at once)"
)
console = Console()
RELAY_COLUMNS = ("received", "accepted", "forwarded")


def up(home: Path = HOME_OPTION, relays: int = RELAYS_OPTION) -> None:
    """Start every service region, media relays and PSTN gateways on 127.0.0.1 with TLS (or reuse
    the running stack)."""
    stack = launcher.start(home, relays=relays, pstn=True)
    for ep in stack.endpoints():
        console.print(f"{ep.service:8} {ep.region:5} {ep.url}  (pid {ep.pid})")
    for region, relays_of in stack.relays.items():
        for name, relay in relays_of.items():
            console.print(f"relay    {region:5} {name} udp/{relay.media_port}  (pid {relay.pid})")
    console.print(f"stack file: {stack_file(home.resolve())}")


def down(home: Path = HOME_OPTION) -> None:
    """Stop the local stack."""
    count = launcher.stop(home)
    console.print(f"stopped {count} process(es)")


def relay_rows(home: Path, stack: Stack) -> list[tuple[str, str, dict[str, int]]]:
    """(region, relay, counters) of every live relay of the stack's meeting regions."""
    if not stack.regions("meeting"):
        return []
    from services.meeting.relay.client import read_counters

    rows = []
    for region in stack.regions("meeting"):
        for name, counters in sorted(read_counters(home, region).items()):
            rows.append((region, name, counters))
    return rows


def status(home: Path = HOME_OPTION) -> None:
    """Show each region's health and each media relay's counters."""
    home = home.resolve()
    try:
        stack = read_stack(home)
    except StackError as exc:
        console.print(str(exc))
        raise typer.Exit(1) from exc
    table = Table("service", "region", "url", "pid", "health")
    failed = False
    for ep in stack.endpoints():
        result = launcher.health(ep)
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
