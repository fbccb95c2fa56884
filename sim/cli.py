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
) -> None:
    """M/M/c/c against Erlang B and M/M/c against Erlang C over the grid, replications on Dask."""
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
        result = validate_grid(points, replications, seed, executor)
    for v in result.points:
        flag = "ok" if v.contains_simultaneous else "MISS"
        note = "" if v.contains else " (outside its 95% interval)"
        how = "" if v.resolved else f"; unresolved: {v.events} events in {v.customers:,} customers"
        typer.echo(
            f"{v.model:4s} c={v.c:<3d} load={v.load:.2f} {v.row()['metric']:22s} "
            f"exact {v.target:.4g}  95% [{v.estimate.low:.4g}, {v.estimate.high:.4g}]  "
            f"family [{v.simultaneous.low:.4g}, {v.simultaneous.high:.4g}] {flag}{note}{how}"
        )
    write_csv([v.row() for v in result.points], out)
    k = len(result.points)
    resolved = len(result.resolved)
    typer.echo(
        f"{k} intervals ({resolved} resolved by Student-t on {replications} replications, "
        f"{k - resolved} too rare to resolve: exact binomial interval of the pooled probability)"
    )
    typer.echo(
        f"95% intervals holding the exact value: {k - len(result.misses)} of {k} "
        f"(chance alone misses about {result.expected_misses:.1f}; "
        f"P(>= {len(result.misses)} misses) = {result.misses_p_value:.2f})"
    )
    held = sum(v.contains_simultaneous for v in result.points)
    typer.echo(
        f"family-wise 95% (each interval at {result.family_level:.5f}, Bonferroni): "
        f"{held} of {k} hold -> {'PASS' if result.passed else 'FAIL'}"
    )
    typer.echo(f"{time.perf_counter() - started:.0f} s -> {out}")
    if not result.passed:
        raise typer.Exit(1)
