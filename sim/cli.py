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
        False, "--server-pool", help="direct M/M/c on sim.service.ServerPool (about 2x slower)"
    ),
    method: str = typer.Option(
        "auto",
        "--method",
        help="auto: direct SimPy runs where all-busy episodes are frequent enough, importance "
        "sampling where not; importance-sampling or direct: every point so",
    ),
    hits: int = typer.Option(
        2_000, "--hits", min=1, help="all-busy cycles per importance-sampled replication"
    ),
) -> None:
    """M/M/c/c against Erlang B and M/M/c against Erlang C over the grid, replications on Dask.

    Exits 1 unless every point's family-wise (Bonferroni) interval holds its exact value."""
    import os
    import time
    from contextlib import nullcontext

    from sim.sweep import dask_executor, write_csv
    from sim.validation import DIRECT, IMPORTANCE, METHODS, grid_points, validate_grid

    started = time.perf_counter()
    if method not in METHODS:
        _fail(ValueError(f"--method must be one of {', '.join(METHODS)}, not {method!r}"))
    try:
        points = grid_points(
            [int(v) for v in servers.split(",")], [float(v) for v in loads.split(",")]
        )
    except ValueError as exc:
        _fail(exc)
    with nullcontext(None) if serial else dask_executor(scheduler, workers) as executor:
        result = validate_grid(
            points, replications, seed, executor, server_pool=server_pool, method=method, hits=hits
        )
    for v in result.points:
        flag = "ok" if v.contains_simultaneous else "MISS"
        note = "" if v.contains else "  (outside its 95% interval)"
        tag = "sampled" if v.method == IMPORTANCE else "direct"
        typer.echo(
            f"{v.model:4s} c={v.c:<3d} load={v.load:.2f} {v.metric:20s} {tag:7s} exact {v.exact:.4g}"
            f"  mean {v.estimate.mean:.4g}  95% [{v.estimate.low:.4g}, {v.estimate.high:.4g}]"
            f"  family [{v.simultaneous.low:.4g}, {v.simultaneous.high:.4g}]"
            f"  skew {v.skewness:+.2f}  {flag}{note}"
        )
    write_csv([v.row() for v in result.points], out)
    k = len(result.points)
    worst = sorted(result.points, key=lambda v: -v.distance)[:3]
    typer.echo(
        f"{k} points, {replications} replications each, stationary start, warm-up deleted, "
        f"Student-t: {len(result.by_method(DIRECT))} direct SimPy runs, "
        f"{len(result.by_method(IMPORTANCE))} importance-sampled regenerative runs "
        f"({hits} all-busy cycles each; all-busy episodes too rare for a direct run)"
    )
    typer.echo(
        f"per-point 95% intervals missing the exact value: {len(result.misses)} of {k} "
        f"(chance alone: about {result.expected_misses:.1f})"
    )
    typer.echo(
        "worst (|mean - exact| / 95% half-width): "
        + ", ".join(f"{v.model} c={v.c} load={v.load:.2f} {v.distance:.2f}" for v in worst)
    )
    typer.echo(
        f"family-wise 95% (Bonferroni, each interval at {result.family_level:.5f}): "
        f"{k - len(result.family_misses)} of {k} hold -> {'PASS' if result.passed else 'FAIL'}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    typer.echo(f"{time.perf_counter() - started:.0f} s wall (load average {load}) -> {out}")
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def coverage(
    model: str = typer.Argument(..., help="mmcc (Erlang B) or mmc (Erlang C)"),
    servers: int = typer.Argument(..., min=1),
    load: float = typer.Argument(..., help="per-server utilisation lambda / (c mu)"),
    sets: int = typer.Option(20, "--sets", min=2, help="independent validations of the point"),
    replications: int = typer.Option(30, "--replications", "-r", min=2),
    seed: int = typer.Option(2024, "--seed"),
    method: str = typer.Option("auto", "--method", help="auto, direct or importance-sampling"),
    hits: int = typer.Option(2_000, "--hits", min=1),
    scheduler: str | None = typer.Option(None, "--scheduler", help="tcp://host:port of Dask"),
    workers: int = typer.Option(2, "--workers", min=1, help="LocalCluster process workers"),
    serial: bool = typer.Option(False, "--serial", help="no Dask: run in this process"),
) -> None:
    """How many of SETS independent 95% intervals of one point hold its Erlang value.

    Exits 1 when so few hold that chance alone explains it with probability under 1%."""
    from contextlib import nullcontext

    from sim.coverage import interval_coverage
    from sim.sweep import dask_executor
    from sim.validation import METHODS

    if method not in METHODS:
        _fail(ValueError(f"--method must be one of {', '.join(METHODS)}, not {method!r}"))
    try:
        with nullcontext(None) if serial else dask_executor(scheduler, workers) as executor:
            found = interval_coverage(
                model, servers, load, sets, replications, seed, executor, method=method, hits=hits
            )
    except ValueError as exc:
        _fail(exc)
    typer.echo(
        f"{model} c={servers} load={load:.2f} ({found.method}, exact {found.exact:.4g}): "
        f"{found.held} of {found.sets} 95% intervals of {replications} replications hold it; "
        f"mean relative error {found.mean_relative_error:+.2%} "
        f"(standard error {found.standard_error:.2%}); "
        f"P(so few hold | 95% coverage) = {found.p_value:.3f}"
    )
    if found.p_value < 0.01:
        raise typer.Exit(1)
