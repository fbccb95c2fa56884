"""`roomtrust sim`: run a simulation scenario, sweep it over a grid on Dask, validate the queues."""

from __future__ import annotations

from pathlib import Path

import typer

from devices_virtual.scenario import ScenarioError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="a scenarios/sim-*.yaml file"),
    out: Path = typer.Option(Path("reports/out/sim"), "--out"),
    seed: int | None = typer.Option(None, "--seed", help="default: the scenario's first seed"),
) -> None:
    """Run one scenario in simulated time; write tables, plots and summary.html."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sim.calls import blocking_curve
    from sim.models import run_model
    from sim.report import write_outputs
    from sim.scenario import CallLoad, load_sim_scenario

    try:
        spec = load_sim_scenario(scenario)
    except ScenarioError as exc:
        _fail(exc)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[sim]} simulated"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(spec.name, total=1.0, sim="0 h")

        def progress(done: float, total: float) -> None:
            bar.update(task, completed=done / total, sim=f"{done / 3600:,.1f} h")

        result = run_model(spec, seed, progress)
        bar.update(task, completed=1.0)
    curve = None
    calls = spec.sim
    if isinstance(calls, CallLoad) and calls.relay_sweep:
        region = calls.sweep_region or max(calls.relays, key=lambda r: calls.relays[r])
        curve = blocking_curve(spec, region, calls.relay_sweep, seed)
    folder = write_outputs(result, out, curve)
    for key, value in result.metrics.items():
        typer.echo(f"{key}: {value}")
    typer.echo(f"summary: {folder / 'summary.html'}")


@app.command()
def sweep(
    scenario: Path = typer.Argument(...),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2 (dotted key); repeatable"),
    replications: int = typer.Option(10, "--replications", "-r", min=1),
    seed: int = typer.Option(1, "--seed", help="root seed of every replication's stream"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://host:port of Dask"),
    workers: int = typer.Option(2, "--workers", min=1, help="LocalCluster process workers"),
    serial: bool = typer.Option(False, "--serial", help="no Dask: run in this process"),
    out: Path = typer.Option(Path("reports/out/sim"), "--out"),
) -> None:
    """Replications over a parameter grid on Dask; results as CSV."""
    from sim.scenario import read_data
    from sim.sweep import dask_executor, parse_grid, run_sweep, write_csv

    try:
        data = read_data(scenario)
        points = parse_grid(grid)
        if serial:
            rows = run_sweep(data, points, replications, seed)
        else:
            with dask_executor(scheduler, workers) as executor:
                rows = run_sweep(data, points, replications, seed, executor)
    except ScenarioError as exc:
        _fail(exc)
    path = write_csv(rows, out / f"{data.get('name', scenario.stem)}-sweep.csv")
    typer.echo(f"{len(rows)} replications -> {path}")


@app.command()
def validate(
    loads: str = typer.Option("0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95", "--loads"),
    servers: str = typer.Option("5,15,50,150", "--servers"),
    replications: int = typer.Option(30, "--replications", "-r", min=30),
    seed: int = typer.Option(2024, "--seed"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://host:port of Dask"),
    workers: int = typer.Option(2, "--workers", min=1, help="LocalCluster process workers"),
    serial: bool = typer.Option(False, "--serial", help="no Dask: run in this process"),
    out: Path = typer.Option(Path("reports/out/sim/validation.csv"), "--out"),
    server_pool: bool = typer.Option(
        False, "--server-pool", help="M/M/c on sim.service.ServerPool (about 2x slower)"
    ),
) -> None:
    """M/M/c/c against Erlang B and M/M/c against Erlang C over the grid, replications on Dask.

    Exits 1 unless every tested point's family-wise (Bonferroni) interval holds its exact value."""
    import os
    import time
    from contextlib import nullcontext

    from sim.queueing import grid_points, validate_grid
    from sim.sweep import dask_executor, write_csv

    started = time.perf_counter()
    try:
        points = grid_points(
            [int(v) for v in servers.split(",")], [float(v) for v in loads.split(",")]
        )
    except ValueError as exc:
        _fail(exc)
    with nullcontext(None) if serial else dask_executor(scheduler, workers) as executor:
        result = validate_grid(points, replications, seed, executor, server_pool=server_pool)
    for v in result.points:
        head = f"{v.model:4s} c={v.c:<3d} load={v.load:.2f} {v.metric:20s} exact {v.exact:.4g}"
        if not v.tested:
            typer.echo(
                f"{head}  not tested ({v.expected_episodes:.2g} episodes/replication expected): "
                f"{v.events} events in {v.customers:,} customers, pooled Clopper-Pearson 95% "
                f"[{v.estimate.low:.2g}, {v.estimate.high:.2g}]"
            )
            continue
        flag = "ok" if v.contains_simultaneous else "MISS"
        note = "" if v.contains else "  (outside its 95% interval)"
        typer.echo(
            f"{head}  mean {v.estimate.mean:.4g}  95% [{v.estimate.low:.4g}, {v.estimate.high:.4g}]"
            f"  family [{v.simultaneous.low:.4g}, {v.simultaneous.high:.4g}]"
            f"  skew {v.skewness:+.2f}  {flag}{note}"
        )
    write_csv([v.row() for v in result.points], out)
    k = len(result.tested)
    worst = sorted(
        result.tested,
        key=lambda v: -abs(v.estimate.mean - v.exact) / max(v.estimate.half_width, 1e-300),
    )[:3]
    typer.echo(
        f"{len(result.points)} points: {k} tested (Student-t on {replications} replications, "
        f"stationary start, warm-up deleted), {len(result.untested)} not tested (all-busy "
        "episodes too rare for a feasible run; shown with the pooled Clopper-Pearson interval)"
    )
    typer.echo(
        f"per-point 95% intervals missing the exact value: {len(result.misses)} of {k} "
        f"(chance alone: about {result.expected_misses:.1f})"
    )
    typer.echo(
        "worst (|mean - exact| / 95% half-width): "
        + ", ".join(
            f"{v.model} c={v.c} load={v.load:.2f} "
            f"{abs(v.estimate.mean - v.exact) / v.estimate.half_width:.2f}"
            for v in worst
        )
    )
    typer.echo(
        f"family-wise 95% (Bonferroni, each interval at {result.family_level:.5f}): "
        f"{k - len(result.family_misses)} of {k} hold -> {'PASS' if result.passed else 'FAIL'}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    typer.echo(f"{time.perf_counter() - started:.0f} s wall (load average {load}) -> {out}")
    if not result.passed:
        raise typer.Exit(1)
