"""`roomtrust load calibrate`: measure the local stack, fit service times, write a calibration file
the simulator reads (`sim.service.load_calibration`), and check the simulator against the
measurement.

1. Set-up through the admin API: an enterprise in the DM region, the devices the measuring users
   need (enrolled ones for heartbeat and telemetry, fresh ones for enrollment).
2. The measurement, in its own gevent process (`load.client.calibration`): for each kind a
   saturation stage (16 users back to back) and the fixed open load (8 users, `--share` of the
   saturated rate, evenly phased).
3. The fit, per kind: the fixed load's response times give the service-time distribution
   (lognormal or gamma, whichever is closer by the Kolmogorov-Smirnov distance), as seen by a
   client at that operating point (TLS, the client's own work and the machine's contention
   included); the saturated throughput times the mean service time gives the number of servers
   (the utilisation law at saturation).
4. The check: the file is read back and the simulator runs the same open load with it
   (`load.predict`: the same agent, users, pace and phasing); throughput, p50 and p95 are printed
   beside Locust's, with their ratios.

A response time here is what a Locust user sees, so the fitted service time holds near the
operating point it was measured at: calibrate at the share of capacity you plan for.

Endpoints that are not measured keep their values from the base file, so the simulator finds
every endpoint it needs.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from devices_virtual.scenario import Fleet, Site
from load.predict import LoadShape, simulate_load
from load.processes import ROOT
from load.provision import DmTarget, device_identities
from protocol.stack import Stack
from sim.service import Calibration, ServiceTime, load_calibration

KINDS = ("enroll", "heartbeat", "telemetry")
PURPOSES = ("enroll", "heartbeat", "telemetry")
DEVICES = 16  # the calibration's saturation stage runs this many device users
ENROLL_IDENTITIES = 400
SIM_WINDOW_S = 60.0  # the simulator runs the measured load this long, for steady percentiles


def ks_distance(
    samples: np.ndarray, model: ServiceTime, draws: int = 20000, seed: int = 7
) -> float:
    """Two-sample Kolmogorov-Smirnov distance between the samples and draws from the model."""
    sampler = model.sampler(np.random.default_rng(seed), block=draws)
    simulated = np.sort(np.fromiter((sampler() for _ in range(draws)), float, draws))
    observed = np.sort(samples)
    points = np.concatenate([observed, simulated])
    cdf_observed = np.searchsorted(observed, points, side="right") / len(observed)
    cdf_simulated = np.searchsorted(simulated, points, side="right") / len(simulated)
    return float(np.max(np.abs(cdf_observed - cdf_simulated)))


def fit_service_time(samples_s: list[float] | np.ndarray, servers: int = 1) -> ServiceTime:
    """Lognormal (maximum likelihood) or gamma (moments), whichever the samples are closer to by
    the Kolmogorov-Smirnov distance."""
    x = np.asarray(samples_s, dtype=float)
    x = x[x > 0]
    if len(x) < 5:
        raise ValueError(f"too few samples to fit ({len(x)})")
    logs = np.log(x)
    mu, sigma = float(logs.mean()), float(logs.std(ddof=1))
    lognormal = ServiceTime(
        servers=servers,
        distribution="lognormal",
        mean_s=math.exp(mu + sigma * sigma / 2),
        cv=math.sqrt(math.expm1(sigma * sigma)),
    )
    mean, std = float(x.mean()), float(x.std(ddof=1))
    gamma = ServiceTime(servers=servers, distribution="gamma", mean_s=mean, cv=std / mean)
    return min((lognormal, gamma), key=lambda model: ks_distance(x, model))


def servers_at_saturation(
    saturate: dict[str, Any], times: dict[str, ServiceTime]
) -> tuple[int, float]:
    """The utilisation law: busy servers = sum of throughput x mean service time, at saturation."""
    window = saturate["window_s"]
    busy = 0.0
    for name, values in saturate["samples_ms"].items():
        purpose = name.removeprefix("dm ")
        if purpose in times:
            busy += len(values) / window * times[purpose].mean_s
    return max(1, round(busy)), busy


def _seconds(samples_ms: dict[str, list[float]], purpose: str) -> list[float]:
    return [v / 1000.0 for v in samples_ms.get(f"dm {purpose}", [])]


def fit_kind(kind: str, stages: dict[str, Any]) -> tuple[dict[str, ServiceTime], dict[str, Any]]:
    """Service times of every purpose the kind's fixed load made, all with the kind's servers."""
    fixed = stages["measure"]["samples_ms"]
    times = {
        p: fit_service_time(_seconds(fixed, p)) for p in PURPOSES if len(_seconds(fixed, p)) >= 5
    }
    if kind not in times:
        raise ValueError(f"{kind}: the fixed load made too few successful {kind} requests")
    servers, busy = servers_at_saturation(stages["saturate"], times)
    times = {p: t.model_copy(update={"servers": servers}) for p, t in times.items()}
    saturate = stages["saturate"]
    capacity = len(saturate["samples_ms"].get(f"dm {kind}", [])) / saturate["window_s"]
    return times, {"servers": servers, "busy_servers": round(busy, 3), "capacity_per_s": capacity}


def measured(stage: dict[str, Any], purpose: str) -> dict[str, float]:
    """Locust's own figures for one purpose of a stage (throughput over the measured window)."""
    figures = stage["locust"].get(f"dm {purpose}", {})
    return {
        "requests": figures.get("requests", 0),
        "throughput": figures.get("requests", 0) / stage["window_s"],
        "p50_ms": float(figures.get("p50_ms") or 0),
        "p95_ms": float(figures.get("p95_ms") or 0),
    }


def predict_stage(
    kind: str,
    stage: dict[str, Any],
    calibration: Calibration,
    seed: int,
    episode: dict[str, ServiceTime] | None = None,
) -> dict[str, Any]:
    """The simulator's run of a kind's fixed load. The kind's own endpoint comes from the file;
    the other requests of its episode (the first heartbeat and telemetry after an enrollment, on
    a new mutual-TLS connection) use what the same stage measured for them (`episode`)."""
    shape = LoadShape(
        kind=kind,
        users=stage["users"],
        rate_per_user=stage["rate_per_user"],
        spawn_rate=stage["spawn_rate"],
        window_s=stage["window_s"],
    )
    times = {**calibration.endpoints, **{p: t for p, t in (episode or {}).items() if p != kind}}
    predicted = simulate_load(shape, times, times[kind].servers, seed, window_s=SIM_WINDOW_S)
    rows: dict[str, Any] = {}
    for purpose in PURPOSES:
        if purpose not in predicted:
            continue
        m = measured(stage, purpose)
        p = predicted[purpose]
        rows[purpose] = {
            "measured": m,
            "predicted": {"throughput": p.throughput, "p50_ms": p.p50_ms, "p95_ms": p.p95_ms},
            "ratio": {
                key: (getattr(p, key) / m[key] if m[key] else None)
                for key in ("throughput", "p50_ms", "p95_ms")
            },
        }
    return {
        "load": {
            "users": shape.users,
            "rate_per_user": shape.rate_per_user,
            "spawn_rate": shape.spawn_rate,
            "window_s": shape.window_s,
        },
        "endpoints": rows,
    }


def write_calibration(
    path: Path, measured_times: dict[str, ServiceTime], base: Path | None, source: str
) -> Calibration:
    endpoints = dict(load_calibration(base).endpoints) if base and base.exists() else {}
    endpoints.update(measured_times)
    calibration = Calibration(source=source, endpoints=endpoints)
    lines = [
        "# Service-time models fitted by `roomtrust load calibrate` (load/calibrate.py) on the",
        "# local stack; read by the simulator (sim/service.py) through a scenario's",
        "# `sim.calibration`. Measured: " + ", ".join(sorted(measured_times)) + ".",
    ]
    data = calibration.model_dump(mode="json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False))
    return calibration


def _plan(
    stack: Stack, kinds: list[str], seconds: float, share: float, region: str
) -> dict[str, Any]:
    run_id = secrets.token_hex(3)
    fleet = Fleet(
        name="calibration",
        dm_region=region,
        sites=[Site(name="Calibration lab")],
        models={"MeetingBar A30": 1},
    )
    target = DmTarget(fleet, stack, run_id)
    try:
        devices = device_identities([fleet], DEVICES, run_id, "calibration")
        fresh = device_identities(
            [fleet], ENROLL_IDENTITIES if "enroll" in kinds else 0, run_id, "calibration-enroll"
        )
        target.deploy(devices + fresh)
        return {
            "kinds": kinds,
            "seconds": seconds,
            "share": share,
            "target": {"dm": target.description()},
            "device_identities": devices if set(kinds) - {"enroll"} else [],
            "enroll_identities": fresh,
        }
    finally:
        target.close()


def measure(plan: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the measuring process (gevent, Locust as a library) and read its result."""
    with tempfile.TemporaryDirectory(prefix="roomtrust-calibrate-") as tmp:
        plan_file, result_file = Path(tmp) / "plan.json", Path(tmp) / "result.json"
        plan_file.write_text(json.dumps(plan))
        done = subprocess.run(
            [sys.executable, "-m", "load.client.calibration", str(plan_file), str(result_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0 or not result_file.exists():
            raise RuntimeError(
                f"the measuring process failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        result: dict[str, Any] = json.loads(result_file.read_text())
        return result


def calibrate_stack(
    stack: Stack,
    kinds: list[str],
    seconds: float,
    region: str,
    out: Path,
    base: Path | None,
    report: Path,
    share: float = 0.5,
    seed: int = 1,
) -> dict[str, Any]:
    began = time.monotonic()
    plan = _plan(stack, kinds, seconds, share, region)
    provisioned = time.monotonic()
    result = measure(plan, timeout_s=120 + 2 * len(kinds) * (seconds + 5))
    timings = {
        "provision_s": round(provisioned - began, 2),
        "measure_process_s": round(time.monotonic() - provisioned, 2),
        **result.get("timings", {}),
    }
    fitted: dict[str, ServiceTime] = {}
    episodes: dict[str, dict[str, ServiceTime]] = {}
    fits: dict[str, Any] = {}
    for kind in kinds:
        times, fit = fit_kind(kind, result["kinds"][kind])
        fitted[kind], episodes[kind] = times[kind], times
        fits[kind] = {**fit, "service_time": times[kind].model_dump(mode="json")}
    source = f"measured by roomtrust load calibrate on DM region {region} ({', '.join(kinds)})"
    write_calibration(out, fitted, base, source)
    calibration = load_calibration(out)  # the simulator reads what was written
    checks = {
        kind: predict_stage(
            kind, result["kinds"][kind]["measure"], calibration, seed, episodes[kind]
        )
        for kind in kinds
    }
    record = {
        "calibration_file": str(out),
        "region": region,
        "seconds_per_stage": seconds,
        "share_of_capacity": share,
        "timings": timings,
        "fits": fits,
        "checks": checks,
        "stages": {
            kind: {
                name: {k: v for k, v in stage.items() if k != "samples_ms"}
                for name, stage in result["kinds"][kind].items()
            }
            for kind in kinds
        },
    }
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(record, indent=1))
    return record


def format_table(record: dict[str, Any]) -> str:
    lines = [
        f"{'kind':<10} {'endpoint':<10} {'':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}",
    ]
    for kind, check in record["checks"].items():
        fit = record["fits"][kind]
        service = fit["service_time"]
        lines.append(
            f"{kind}: {service['distribution']} mean {service['mean_s'] * 1000:.1f} ms "
            f"cv {service['cv']:.2f}, {fit['servers']} server(s), "
            f"capacity {fit['capacity_per_s']:.0f}/s; open load "
            f"{check['load']['users']} users x {check['load']['rate_per_user']:.2f}/s"
        )
        for purpose, row in check["endpoints"].items():
            m, p, r = row["measured"], row["predicted"], row["ratio"]
            lines.append(
                f"{'':<10} {purpose:<10} {'measured':<10} {m['throughput']:>8.1f} "
                f"{m['p50_ms']:>8.1f} {m['p95_ms']:>8.1f}"
            )
            lines.append(
                f"{'':<10} {'':<10} {'simulated':<10} {p['throughput']:>8.1f} "
                f"{p['p50_ms']:>8.1f} {p['p95_ms']:>8.1f}"
            )
            ratio = " ".join(
                f"{r[k]:>8.2f}" if r[k] is not None else f"{'-':>8}"
                for k in ("throughput", "p50_ms", "p95_ms")
            )
            lines.append(f"{'':<10} {'':<10} {'ratio':<10} {ratio}")
    return "\n".join(lines)
