"""Staged rollout: the DM service's own rollout planner (services/dm/domain/rollout_planner.py)
driven in simulated time.

The planner decides; the simulator only carries out its actions: a StartUpdate becomes a download
(its time drawn from the `firmware` service model), an install and the model's reboot, and then an
UpdateSucceeded or, with the scenario's failure rate, an UpdateFailed. A ticker gives the planner
the time, so maintenance windows (in each site's time zone) and alert windows pass.

Gives the days to completion, the wave boundaries, any pause or abort with its reason, and the
devices per state over time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from devices_virtual.models import CATALOGUE
from services.dm.domain import rollout_planner as rp
from sim.fleet import expand
from sim.result import Progress, SimResult, run_while
from sim.scenario import AmountSpec, SimScenario, StagedRollout

FAILURE_REASON = "install-failed"


def _amount(spec: AmountSpec) -> rp.Amount:
    return rp.Amount(count=spec.count, percent=spec.percent)


def make_plan(spec: StagedRollout, rollout_id: str = "sim") -> rp.RolloutPlan:
    return rp.RolloutPlan(
        rollout_id=rollout_id,
        image_id="sim-image",
        version=spec.version,
        target=rp.TargetFilter(),
        waves=tuple(_amount(w) for w in spec.waves),
        success_percent=spec.success_percent,
        error_threshold=_amount(spec.error_threshold),
        on_error=spec.on_error,
        alert_window=dt.timedelta(minutes=spec.alert_window_min),
        windows=tuple(
            rp.MaintenanceWindow(w.start, w.end, frozenset(w.weekdays)) for w in spec.windows
        ),
        download_cap=spec.download_cap,
    )


def fleet_devices(scenario: SimScenario) -> list[rp.DeviceInfo]:
    fleet = expand(scenario)
    devices = []
    for index in np.flatnonzero(fleet.deployed).tolist():
        site = fleet.sites[int(fleet.site[index])]
        model = CATALOGUE[fleet.models[int(fleet.model[index])]]
        devices.append(
            rp.DeviceInfo(
                f"d{index:06d}",
                model.name,
                f"{site.fleet}/{site.site.name}",
                site.site.time_zone,
                site.dm_region,
                model.firmware_version,
            )
        )
    return devices


def run_rollout(
    scenario: SimScenario, seed: int | None = None, progress: Progress | None = None
) -> SimResult:
    spec = scenario.sim
    assert isinstance(spec, StagedRollout)
    seed = scenario.seed if seed is None else seed
    gen = np.random.default_rng(seed)
    download = spec.service_times()["firmware"].sampler(gen)
    env = simpy.Environment()
    planner = rp.RolloutPlanner(make_plan(spec))
    devices = {d.device_id: d for d in fleet_devices(scenario)}
    boot = {d.device_id: CATALOGUE[d.model].boot_seconds for d in devices.values()}
    waves: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    in_flight = [0]

    def at(seconds: float) -> dt.datetime:
        return spec.start + dt.timedelta(seconds=seconds)

    def handle(event: rp.Event) -> None:
        for action in planner.handle(event):
            if isinstance(action, rp.StartUpdate):
                env.process(update(action.device_id))
            elif isinstance(action, rp.WaveStarted):
                waves.append(
                    {"wave": action.wave, "size": len(action.device_ids), "start_s": env.now}
                )
            elif isinstance(action, rp.RolloutPaused | rp.RolloutAborted):
                kind = "paused" if isinstance(action, rp.RolloutPaused) else "aborted"
                events.append({"event": kind, "reason": action.reason, "t_s": env.now})
            elif isinstance(action, rp.RolloutCompleted):
                events.append({"event": "completed", "reason": "", "t_s": env.now})

    def update(device_id: str) -> Generator[simpy.Event, Any, None]:
        in_flight[0] += 1
        handle(rp.DownloadStarted(at(env.now), device_id))
        yield env.timeout(download())
        handle(rp.DownloadFinished(at(env.now), device_id))
        yield env.timeout(spec.install_s + boot[device_id])
        in_flight[0] -= 1
        if gen.random() < spec.failure_rate:
            handle(rp.UpdateFailed(at(env.now), device_id, FAILURE_REASON))
        else:
            handle(rp.UpdateSucceeded(at(env.now), device_id))

    series: list[dict[str, float]] = []

    def sample() -> None:
        progress_rows = planner.progress()
        series.append(
            {
                "t_s": env.now,
                "waiting": float(sum(w.waiting for w in progress_rows)),
                "in_progress": float(sum(w.in_progress for w in progress_rows)),
                "updated": float(sum(w.updated for w in progress_rows)),
                "failed": float(sum(w.failed for w in progress_rows)),
                "cancelled": float(sum(w.cancelled for w in progress_rows)),
            }
        )

    def ticker() -> Generator[simpy.Event, Any, None]:
        next_sample = 0.0
        while True:
            handle(rp.Tick(at(env.now)))
            if env.now >= next_sample:
                sample()
                next_sample += spec.sample_every_s
            yield env.timeout(spec.tick_s)

    handle(rp.Start(at(0.0), tuple(devices.values())))
    env.process(ticker())

    def busy() -> bool:
        return planner.state == "running" or (planner.state == "paused" and in_flight[0] > 0)

    run_while(env, spec.hours * 3600, busy, progress, step=max(spec.tick_s, 3600.0))
    sample()
    final = planner.progress()
    completed = planner.state == "completed"
    end_s = next((e["t_s"] for e in events if e["event"] == "completed"), None)
    metrics: dict[str, Any] = {
        "devices": len(devices),
        "state": planner.state,
        "completed": completed,
        "days_to_completion": round(end_s / 86400, 4) if end_s is not None else None,
        "updated": sum(w.updated for w in final),
        "failed": sum(w.failed for w in final),
        "waiting": sum(w.waiting for w in final),
        "cancelled": sum(w.cancelled for w in final),
        "wave_sizes": [w.size for w in final],
        "waves_started": len(waves),
        "pause_reason": next((e["reason"] for e in events if e["event"] == "paused"), None),
        "abort_reason": next((e["reason"] for e in events if e["event"] == "aborted"), None),
    }
    return SimResult(
        scenario.name,
        spec.kind,
        seed,
        metrics,
        {"states": series, "waves": waves, "events": events},
    )
