"""Retention volume: rows and bytes the DM store holds per day under its retention period.

Telemetry comes from the fleet's reporting interval (its day-one count is measured by a
`sim.cohort.Cohort` of the fleet, so it matches what the steady-state model generates); health
events and operation-log lines come at per-device daily rates. Each day's rows are Poisson around
their means; rows older than the retention period are purged, so the stored volume rises and then
levels off. Gives rows and bytes per day, for storage sizing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy

from sim.cohort import Cohort
from sim.fleet import expand
from sim.result import Progress, SimResult
from sim.scenario import RetentionVolume, SimScenario

SAMPLE_DEVICES = 2000  # a cohort this big measures the per-device telemetry rate


def telemetry_per_device_day(heartbeat_s: float, telemetry_s: float, seed: int) -> float:
    env = simpy.Environment()
    gen = np.random.default_rng(seed)
    cohort = Cohort(env, SAMPLE_DEVICES, heartbeat_s, telemetry_s, gen, tick_s=10.0)
    env.run(until=86400)
    return float(cohort.reports.sum()) / SAMPLE_DEVICES


def run_retention(
    scenario: SimScenario, seed: int | None = None, progress: Progress | None = None
) -> SimResult:
    spec = scenario.sim
    assert isinstance(spec, RetentionVolume)
    seed = scenario.seed if seed is None else seed
    gen = np.random.default_rng(seed)
    devices = int(expand(scenario).deployed.sum())
    per_day = {
        "telemetry": telemetry_per_device_day(
            scenario.timing.heartbeat_s, scenario.timing.telemetry_s, seed
        ),
        "health": spec.health_per_device_day,
        "oplog": spec.oplog_per_device_day,
    }
    tables = [t for t in per_day if t in spec.row_bytes]
    days = np.arange(spec.days)
    fleet = devices * (1 + spec.growth_per_day) ** days
    new = {t: gen.poisson(fleet * per_day[t]) for t in tables}
    stored = {}
    for t in tables:
        cumulative = np.cumsum(new[t])
        purged = np.concatenate([np.zeros(spec.retention_days), cumulative[: -spec.retention_days]])
        stored[t] = cumulative - purged[: spec.days]
    series = []
    for d in range(spec.days):
        row: dict[str, float] = {"day": float(d), "devices": float(fleet[d])}
        total_bytes = 0.0
        for t in tables:
            row[f"rows_{t}"] = float(stored[t][d])
            total_bytes += float(stored[t][d]) * spec.row_bytes[t]
        row["stored_gb"] = total_bytes / 1e9
        series.append(row)
        if progress is not None and d % 10 == 0:
            progress(d * 86400.0, spec.days * 86400.0)
    last = series[-1]
    metrics: dict[str, Any] = {
        "devices": devices,
        "retention_days": spec.retention_days,
        "telemetry_rows_per_device_day": round(per_day["telemetry"], 3),
        "rows_per_day": int(sum(new[t][-1] for t in tables)),
        "stored_rows": int(sum(last[f"rows_{t}"] for t in tables)),
        "stored_gb": round(last["stored_gb"], 4),
        "peak_stored_gb": round(max(r["stored_gb"] for r in series), 4),
        "bytes_per_device_day": round(sum(per_day[t] * spec.row_bytes[t] for t in tables), 1),
    }
    return SimResult(scenario.name, spec.kind, seed, metrics, {"volume": series})
