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
    replications: int = typer.Option(10, "--replications", "-r", min=2),
    seed: int = typer.Option(2024, "--seed"),
    out: Path = typer.Option(Path("reports/out/sim/validation.csv"), "--out"),
) -> None:
    """M/M/c/c against Erlang B and M/M/c against Erlang C over the whole grid (slow)."""
    from concurrent.futures import ProcessPoolExecutor

    from sim.queueing import MODELS, validate_point
    from sim.sweep import write_csv

    rows = []
    with ProcessPoolExecutor(2) as pool:
        for model in MODELS:
            for c in (int(v) for v in servers.split(",")):
                for load in (float(v) for v in loads.split(",")):
                    v = validate_point(model, c, load, replications, seed, executor=pool)
                    row = v.row()
                    row["pw_exact"] = v.exact_wait_probability
                    row["pw_low"], row["pw_high"] = v.wait_probability.low, v.wait_probability.high
                    rows.append(row)
                    typer.echo(
                        f"{model} c={c} load={load:.2f}: exact {v.exact:.4g}, "
                        f"CI [{v.estimate.low:.4g}, {v.estimate.high:.4g}] "
                        f"{'contains' if v.contains else 'MISSES'}"
                    )
    write_csv(rows, out)
    misses = sum(not r["contains"] for r in rows)
    typer.echo(f"{len(rows) - misses} of {len(rows)} intervals contain the exact value -> {out}")
