"""Sweeps: replications of a scenario over a parameter grid, on any `concurrent.futures`
executor. `roomtrust sim sweep` uses Dask: a LocalCluster of process workers bound to 127.0.0.1,
or an existing scheduler (`--scheduler tcp://host:port`), through `Client.get_executor()`.

Every (grid point, replication) gets its own seed, spawned from the root seed in a fixed order,
so a sweep gives the same numbers serially, on two workers or on two hundred.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from devices_virtual.scenario import ScenarioError
from sim.scenario import parse_sim_scenario, with_overrides


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`sim.relays.asia=4,6,8` -> {"sim.relays.asia": [4, 6, 8]} (values read as YAML)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ScenarioError("--grid", item, "write KEY=V1,V2,... (KEY dotted, e.g. sim.hours)")
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def task_seeds(root: int, count: int) -> list[int]:
    """One 63-bit seed per task, from independent SeedSequence children of the root."""
    return [
        int(
            child.generate_state(2, np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], np.uint64)
        )
        for child in np.random.SeedSequence(root).spawn(count)
    ]


def run_task(
    data: dict[str, Any], point: dict[str, Any], replication: int, seed: int
) -> dict[str, Any]:
    """One replication at one grid point; runs on a worker, returns one flat result row."""
    from sim.models import run_model

    scenario = parse_sim_scenario(with_overrides(data, point), "sweep")
    result = run_model(scenario, seed)
    row: dict[str, Any] = {**point, "replication": replication, "seed": seed}
    for key, value in result.metrics.items():
        if isinstance(value, bool | int | float | str) or value is None:
            row[key] = value
    return row


def run_sweep(
    data: dict[str, Any],
    grid: dict[str, list[Any]],
    replications: int,
    root_seed: int,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    parse_sim_scenario(data, "sweep")  # fail before any work on a bad scenario
    for point in points(grid):
        parse_sim_scenario(with_overrides(data, point), f"grid point {point}")
    tasks = [(p, r) for p in points(grid) for r in range(replications)]
    seeds = task_seeds(root_seed, len(tasks))
    args = (
        [data] * len(tasks),
        [p for p, _ in tasks],
        [r for _, r in tasks],
        seeds,
    )
    if executor is None:
        return list(map(run_task, *args))
    return list(executor.map(run_task, *args))


@contextmanager
def dask_executor(scheduler: str | None = None, workers: int = 2) -> Iterator[Executor]:
    """A concurrent.futures executor on Dask: a LocalCluster of process workers on 127.0.0.1,
    or the cluster behind `scheduler`."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client.get_executor()
        return
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client.get_executor()


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
