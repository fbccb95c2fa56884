"""`roomtrust load calibrate` on a live DM region: it measures telemetry through Locust, fits a
service-time model, writes a calibration file the simulator reads, and the simulator's run of the
same load predicts Locust's measured p50 within 25%."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from load.calibrate import fit_service_time, servers_at_saturation
from protocol.stack import Stack
from sim.scenario import EnrollmentStorm
from sim.service import ServiceTime, load_calibration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("draw", "family"),
    [
        (lambda g: g.lognormal(np.log(0.02), 0.8, 4000), "lognormal"),
        (lambda g: g.gamma(9.0, 0.002, 4000), "gamma"),
    ],
)
def test_fit_recovers_the_family_and_its_moments(
    draw: Callable[[np.random.Generator], np.ndarray], family: str
) -> None:
    samples = draw(np.random.default_rng(4))
    fitted = fit_service_time(samples)
    assert fitted.distribution == family
    assert fitted.mean_s == pytest.approx(float(samples.mean()), rel=0.05)
    assert fitted.cv == pytest.approx(float(samples.std() / samples.mean()), rel=0.1)


def test_servers_by_the_utilisation_law() -> None:
    saturate = {"window_s": 2.0, "samples_ms": {"dm telemetry": [1.0] * 600, "dm x": [1.0]}}
    times = {"telemetry": ServiceTime(mean_s=0.02)}
    assert servers_at_saturation(saturate, times) == (6, pytest.approx(6.0))


@pytest.mark.slow
def test_calibrate_then_simulate_predicts_telemetry_p50(
    load_stack: Stack, tmp_path: Path, roomtrust_load: Callable[..., Any]
) -> None:
    out, report = tmp_path / "local.yaml", tmp_path / "calibration.json"
    done = roomtrust_load(
        "calibrate", "--kinds", "telemetry", "--seconds", "3",
        "--home", str(load_stack.home), "--out", str(out), "--report", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    record = json.loads(report.read_text())
    check = record["checks"]["telemetry"]["endpoints"]["telemetry"]
    measured, predicted, ratio = check["measured"], check["predicted"], check["ratio"]
    print(f"telemetry p50: measured {measured['p50_ms']:.1f} ms, simulated "
          f"{predicted['p50_ms']:.1f} ms, ratio {ratio['p50_ms']:.2f}")  # fmt: skip
    assert measured["requests"] >= 20
    assert 0.75 <= ratio["p50_ms"] <= 1.25
    assert 0.75 <= ratio["throughput"] <= 1.25  # the open model is reproduced too
    assert "ratio" in done.stdout and "simulated" in done.stdout
    # the simulator reads the file: measured telemetry, the other endpoints from the base file
    calibration = load_calibration(out)
    fitted = ServiceTime.model_validate(record["fits"]["telemetry"]["service_time"])
    assert calibration.endpoints["telemetry"] == fitted
    assert "measured" in calibration.source and "telemetry" in calibration.source
    assert {"enroll", "heartbeat", "firmware", "conference"} <= set(calibration.endpoints)
    storm = EnrollmentStorm(kind="enrollment_storm", calibration=str(out))
    assert storm.service_times()["telemetry"] == fitted
