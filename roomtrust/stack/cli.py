"""`roomtrust up|down|status`: the local stack's commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from protocol.stack import Stack, StackError, read_stack, stack_file
from roomtrust.stack import balancer as haproxy
from roomtrust.stack import launcher

HOME_OPTION = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME")
RELAYS_OPTION = typer.Option(
    2, "--relays", min=1, help="media relays per meeting region (2 or more fail over at once)"
)
REPLICAS_OPTION = typer.Option(
    1,
    "--replicas",
    min=1,
    help="processes per DM and meeting region, behind one HAProxy per region (2 or more need "
    "PostgreSQL; meeting replicas also need nats-server)",
)
MEETING_REPLICAS_OPTION = typer.Option(
    None,
    "--meeting-replicas",
    min=1,
    help="signaling replicas per meeting region when it differs from --replicas "
    "(e.g. --replicas 3 --meeting-replicas 2)",
)
DATABASE_OPTION = typer.Option(
    None,
    "--database-url",
    envvar="ROOMTRUST_DATABASE_URL",
    help="the PostgreSQL database the replicas share (postgresql+psycopg://...)",
)
console = Console()
RELAY_COLUMNS = ("received", "accepted", "forwarded")


def up(
    home: Path = HOME_OPTION,
    relays: int = RELAYS_OPTION,
    replicas: int = REPLICAS_OPTION,
    meeting_replicas: int | None = MEETING_REPLICAS_OPTION,
    database_url: str | None = DATABASE_OPTION,
) -> None:
    """Start every service region, media relays and PSTN gateways on 127.0.0.1 with TLS (or reuse
    the running stack); with --replicas N each DM and meeting region runs as N processes behind
    HAProxy (--meeting-replicas M: M for the meeting regions), the meeting replicas with one NATS
    server between them."""
    counts = {"dm": replicas, "meeting": meeting_replicas or replicas}
    try:
        stack = launcher.start(
            home, relays=relays, pstn=True, replicas=counts, database_url=database_url
        )
    except StackError as exc:
        console.print(f"roomtrust up: {exc}")
        raise typer.Exit(2) from exc
    for ep in stack.endpoints():
        replicas_of = stack.replicas_of(ep.service, ep.region)
        where = f"haproxy, {len(replicas_of)} replicas" if replicas_of else "pid"
        console.print(f"{ep.service:8} {ep.region:5} {ep.url}  ({where} {ep.pid})")
        for replica in replicas_of:
            console.print(f"  replica {replica.name} {replica.url}  (pid {replica.pid})")
    for region, relays_of in stack.relays.items():
        for name, relay in relays_of.items():
            console.print(f"relay    {region:5} {name} udp/{relay.media_port}  (pid {relay.pid})")
    for region, interop in stack.interop.items():
        console.print(
            f"interop  {region:5} sip/{interop.sip_port} h323/{interop.h323_port}  "
            f"(pid {interop.pid})"
        )
    if stack.bus is not None:
        console.print(f"nats           {stack.bus.url}  (pid {stack.bus.pid})")
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
    if stack.replicas:
        failed |= replica_table(stack)
    if stack.bus is not None or stack.interop:
        failed |= side_table(stack)
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


def replica_table(stack: Stack) -> bool:
    """Print every replica (pid, port, its own health, and whether its balancer has it in
    rotation) and every balancer; True when one of them is not healthy."""
    table = Table("service", "region", "process", "pid", "port", "health", "balancer")
    failed = False
    for service, regions in stack.balancers.items():
        for region, balancer in regions.items():
            try:
                states = haproxy.server_states(Path(balancer.stats_socket))
                rotation = ", ".join(f"{n} {s['status']}" for n, s in sorted(states.items()))
            except OSError as exc:
                states, rotation = {}, f"stats socket: {exc}"
            alive = launcher.probe(
                balancer.pid, balancer.url, stack.endpoint(service, region).ca_file
            )
            failed |= not alive["ok"]
            table.add_row(
                service,
                region,
                "haproxy",
                str(balancer.pid),
                str(balancer.port),
                "ok" if alive["ok"] else f"DOWN {alive.get('reason', '')}",
                rotation,
            )
            for replica in stack.replicas_of(service, region):
                result = launcher.probe(
                    replica.pid, replica.url, stack.endpoint(service, region).ca_file
                )
                failed |= not result["ok"]
                detail = ", ".join(f"{k}={v}" for k, v in result.items() if k != "ok")
                table.add_row(
                    service,
                    region,
                    replica.name,
                    str(replica.pid),
                    str(replica.port),
                    ("ok " if result["ok"] else "DOWN ") + detail,
                    states.get(replica.name, {}).get("status", "?"),
                )
    console.print(table)
    return failed


def side_table(stack: Stack) -> bool:
    """Print the processes beside the regions of a replicated stack (the NATS server, each
    relay, PSTN and interop gateway) with their health; True when one of them is not healthy."""
    from roomtrust.stack.meeting_region import bus_healthy

    table = Table("process", "region", "name", "pid", "where", "health")
    failed = False
    rows: list[tuple[str, str, str, int, str, dict[str, object]]] = []
    if stack.bus is not None:
        ok = bus_healthy(stack.bus)
        health: dict[str, object] = {"ok": ok} if ok else {"ok": False, "reason": "no /healthz"}
        rows.append(("nats", "", "", stack.bus.pid, stack.bus.url, health))
    for region, relays in stack.relays.items():
        for name, relay in relays.items():
            where = f"{relay.control_url} udp/{relay.media_port}"
            rows.append(("relay", region, name, relay.pid, where, launcher.alive(relay.pid)))
    for region, gateway in stack.pstn.items():
        where = gateway.control_url
        rows.append(("pstn", region, "", gateway.pid, where, launcher.alive(gateway.pid)))
    for region, interop in stack.interop.items():
        where = f"sip/{interop.sip_port} h323/{interop.h323_port}"
        rows.append(("interop", region, "", interop.pid, where, launcher.alive(interop.pid)))
    for kind, region, name, pid, where, result in rows:
        failed |= not result["ok"]
        detail = ", ".join(f"{k}={v}" for k, v in result.items() if k != "ok")
        table.add_row(
            kind, region, name, str(pid), where, ("ok " if result["ok"] else "DOWN ") + detail
        )
    console.print(table)
    return failed


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
