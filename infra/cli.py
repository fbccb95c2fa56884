"""`roomtrust infra ...`: snapshot cloud stacks under Pulumi mocks and check them against the claims.

`roomtrust infra stacks` lists the stacks, `roomtrust infra graph STACK` writes a stack's resource
graph as JSON, `roomtrust infra check STACK` runs every policy check over it (`all` checks every
stack and the rules across stacks). No cloud credentials or Pulumi CLI are needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from infra.stacks import catalogue

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()


def _known(stack: str) -> None:
    if stack not in catalogue.stack_names():
        console.print(f"[red]{catalogue.UnknownStack(stack)}[/red]")
        raise typer.Exit(2)


@app.command("stacks")
def stacks() -> None:
    """List the stacks of infra/stacks/."""
    for name in catalogue.stack_names():
        typer.echo(name)


@app.command("graph")
def graph(
    stack: str = typer.Argument(..., help="stack name, e.g. prod-dm-eu"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write here instead of stdout"),
) -> None:
    """Snapshot STACK under recording mocks and write its resource graph as JSON."""
    from infra.snapshot import snapshot_stack

    _known(stack)
    text = json.dumps(snapshot_stack(stack), indent=2, sort_keys=True)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        console.print(f"wrote {out}", style="dim")


@app.command("check")
def check(
    stack: str = typer.Argument(..., help="stack name, or `all` for every stack"),
    graph_file: Path | None = typer.Option(
        None, "--graph", help="check this graph JSON instead of snapshotting STACK"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Run every policy check over STACK's graph; exit 1 when any check fails."""
    from infra.policy.checks import (
        check_all,
        credential_sharing_violations,
        stack_set_violations,
    )

    graphs: dict[str, dict[str, Any]]
    if graph_file is not None:
        graphs = {stack: json.loads(graph_file.read_text())}
    elif stack == "all":
        from infra.snapshot import snapshot_all

        graphs = snapshot_all()
    else:
        from infra.snapshot import snapshot_stack

        _known(stack)
        graphs = {stack: snapshot_stack(stack)}
    results = [result for document in graphs.values() for result in check_all(document)]
    across = []
    if stack == "all" and graph_file is None:
        across = [("IN-01", m) for m in stack_set_violations(graphs)]
        across += [("IN-06", m) for m in credential_sharing_violations(graphs)]
    failed = any(not r.passed for r in results) or bool(across)
    if as_json:
        payload = {
            "passed": not failed,
            "results": [r.as_dict() for r in results],
            "across_stacks": [{"claim": c, "message": m} for c, m in across],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        table = Table("stack", "claim", "selected", "verdict", "violations")
        for r in results:
            verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            details = "\n".join(v.message for v in r.violations[:5])
            table.add_row(r.stack, r.claim, str(r.selected), verdict, details)
        console.print(table)
        for claim, message in across:
            console.print(f"[red]FAIL[/red] {claim} (across stacks): {message}")
        console.print(
            f"{sum(r.passed for r in results)}/{len(results)} checks passed"
            + (f", {len(across)} cross-stack violation(s)" if across else "")
        )
    if failed:
        raise typer.Exit(1)
