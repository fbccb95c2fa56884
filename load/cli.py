"""`roomtrust load`: Locust load against the local stack, and the calibration of the simulator.

    roomtrust load SCENARIO [--users N --spawn-rate R --time T] [--workers K | --master-host H]
    roomtrust load calibrate [--kinds telemetry,heartbeat,enroll] [--out scenarios/calibration/local.yaml]

A run provisions its devices and accounts through the admin APIs, runs Locust headless in its own
processes (a master and K workers on 127.0.0.1 with `--workers K`), writes Locust's CSV, HTML and
JSON to reports/out/load/<scenario>/, and exits non-zero when the failure ratio or a p95 passes the
scenario's thresholds. A scenario with `operations` (a config push and a renewal wave by its
operator user) also reports them as the DM service recorded them (operations.json), and exits
non-zero when one did not reach every device. `--master-host H` joins a master elsewhere as one more worker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from time import monotonic
from typing import Any

import typer
from typer.core import TyperGroup

from devices_virtual.scenario import ScenarioError


class _RunByDefault(TyperGroup):
    """`roomtrust load FILE ...` means `roomtrust load run FILE ...`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RunByDefault, no_args_is_help=True, add_completion=False, help=__doc__)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_duration(text: str) -> float:
    """Seconds in `text`: 90, 90s, 2m, 1h, 1m30s."""
    match = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text
    )
    if not text.strip() or match is None or not any(match.groups()):
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 30s, 2m, 1h)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def print_summary(verdict: dict[str, Any], out: Path) -> None:
    rows = [r for r in verdict["endpoints"] if r["name"] != "Aggregated"]
    total = next((r for r in verdict["endpoints"] if r["name"] == "Aggregated"), None)
    width = max([len(r["name"]) for r in rows] + [20])
    typer.echo(
        f"{'type':<9} {'endpoint kind':<{width}} {'requests':>9} {'failures':>9} {'p50 ms':>8} {'p95 ms':>8}"
    )
    for r in sorted(rows, key=lambda r: (r["method"], r["name"])):
        typer.echo(
            f"{r['method']:<9} {r['name']:<{width}} {r['requests']:>9} {r['failures']:>9} "
            f"{r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f}"
        )
    if total:
        typer.echo(
            f"{'':<9} {'all':<{width}} {total['requests']:>9} {total['failures']:>9} "
            f"{total['p50_ms']:>8.0f} {total['p95_ms']:>8.0f}"
        )
    for line in verdict["broken"]:
        typer.echo(f"THRESHOLD BROKEN: {line}")
    typer.echo(f"verdict: {'passed' if verdict['passed'] else 'FAILED'}")
    typer.echo(f"reports: {out}/report.html, {out}/stats_stats.csv, {out}/stats.json")


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="a load scenario, e.g. scenarios/load-smoke.yaml"),
    users: int | None = typer.Option(None, "--users", "-u", min=1, help="default: the scenario's"),
    spawn_rate: float | None = typer.Option(None, "--spawn-rate", "-r", min=0.001),
    time: str | None = typer.Option(None, "--time", "-t", help="run time: 30s, 2m, ..."),
    workers: int = typer.Option(0, "--workers", min=0, help="a master and K local workers"),
    remote_workers: int = typer.Option(
        0, "--remote-workers", min=0, help="also wait for this many workers from elsewhere"
    ),
    master_host: str | None = typer.Option(
        None, "--master-host", help="join the master on this host as one worker"
    ),
    master_port: int | None = typer.Option(None, "--master-port"),
    bind_host: str = typer.Option("127.0.0.1", "--master-bind-host"),
    home: Path = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME"),
    out: Path = typer.Option(Path("reports/out/load"), "--out"),
) -> None:
    """Run a load scenario through Locust against the local stack."""
    from load import processes

    if master_host is not None:
        if workers or remote_workers:
            _fail("--master-host joins a master as a worker; it takes no --workers")
        log = out / "worker-remote.log"
        typer.echo(f"joining the master at {master_host}:{master_port or 5557} (log: {log})")
        raise typer.Exit(processes.run_worker(master_host, master_port or 5557, log))

    from load.provision import provision, write_provision
    from load.scenario import load_load_scenario
    from protocol.stack import StackError, read_stack

    try:
        spec = load_load_scenario(scenario)
        stack = read_stack(home.resolve())
    except (ScenarioError, StackError) as exc:
        _fail(str(exc))
    load = spec.load
    n_users = users or load.users
    run_dir = out / spec.name
    typer.echo(f"provisioning for {n_users} users of {', '.join(load.classes)} ...")
    began = monotonic()
    made = provision(spec, stack, n_users)
    provision_file = write_provision(made, home / "load" / f"{spec.name}-{made['run_id']}.json")
    plan = processes.RunPlan(
        scenario_file=scenario.resolve(),
        out=run_dir.resolve(),
        users=n_users,
        spawn_rate=spawn_rate or load.spawn_rate,
        run_time_s=parse_duration(time) if time else load.run_time_s,
        classes=spec.locust_classes(),
        stop_timeout_s=load.stop_timeout_s,
        workers=workers,
        remote_workers=remote_workers,
        bind_host=bind_host,
        master_port=master_port,
    )
    mode = f"a master and {workers} workers" if plan.distributed else "one process"
    typer.echo(f"provisioned in {monotonic() - began:.1f}s")
    typer.echo(f"running {spec.name}: {n_users} users for {plan.run_time_s:g}s in {mode}")
    began = monotonic()
    result = processes.run_locust(plan, provision_file.resolve())
    typer.echo(f"Locust ran in {monotonic() - began:.1f}s (exit code {result.exit_code})")
    verdict_file = run_dir / "verdict.json"
    if not verdict_file.exists():
        typer.echo(f"no verdict: Locust ended with {result.exit_code}; see {result.logs[0]}")
        raise typer.Exit(result.exit_code or 2)
    print_summary(json.loads(verdict_file.read_text()), run_dir)
    code = result.exit_code
    if load.operations is not None:
        code = max(code, report_operations(made, load.operations.model_dump(), run_dir))
    raise typer.Exit(code)


def report_operations(made: dict[str, Any], schedule: dict[str, Any], run_dir: Path) -> int:
    """The config push and renewal wave as the DM service recorded them: operations.json, the
    summary lines, and 1 when a scheduled one did not reach every device."""
    from load.operations import format_report, operations_report

    report = operations_report(made, run_dir, schedule)
    (run_dir / "operations.json").write_text(json.dumps(report, indent=1))
    for line in format_report(report):
        typer.echo(line)
    typer.echo(f"operations: {run_dir}/operations.json")
    return 0 if report["complete"] else 1


@app.command()
def calibrate(
    kinds: str = typer.Option("enroll,heartbeat,telemetry", "--kinds", help="endpoint kinds"),
    seconds: float = typer.Option(4.0, "--seconds", min=1.0, help="length of each stage"),
    share: float = typer.Option(
        0.5, "--share", min=0.05, max=0.95, help="the fixed load, as a share of capacity"
    ),
    region: str = typer.Option("us", "--region", help="the DM region measured"),
    out: Path = typer.Option(Path("scenarios/calibration/local.yaml"), "--out"),
    base: Path = typer.Option(
        Path("scenarios/calibration/default.yaml"), "--base", help="endpoints not measured"
    ),
    report: Path = typer.Option(Path("reports/out/load/calibration.json"), "--report"),
    home: Path = typer.Option(Path(".roomtrust"), "--home", envvar="ROOMTRUST_HOME"),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """Measure service times of the local stack, fit them, write a calibration file, and print the
    simulator's prediction of the measured load next to the measurement."""
    from load.calibrate import KINDS, calibrate_stack, format_table
    from protocol.stack import StackError, read_stack

    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown or not wanted:
        _fail(f"unknown kind(s) {unknown}; kinds are: {', '.join(KINDS)}")
    try:
        stack = read_stack(home.resolve())
    except StackError as exc:
        _fail(str(exc))
    result = calibrate_stack(stack, wanted, seconds, region, out, base, report, share, seed)
    typer.echo(format_table(result))
    typer.echo(f"calibration: {out}")
    typer.echo(f"report: {report}")
