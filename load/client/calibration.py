"""The measuring half of `roomtrust load calibrate`, in its own gevent process:

    python -m load.client.calibration PLAN.json RESULT.json

For each endpoint kind it runs two stages with Locust as a library (a local runner, Locust's own
statistics), each with the same client code as a load run:

- saturate: many users, back to back: the most the region serves (gives the number of servers);
- measure: the fixed open load, a share of the saturated rate (`constant_throughput`), its users
  spread evenly over one period: the service times are fitted to it, and the simulator is asked
  to predict it.

A heartbeat or telemetry user takes a device enrolled before the stages; an enrollment user takes a
new deployed identity for every task and runs the agent's whole episode (enroll, then its first
heartbeat and telemetry), as a real device would. The result has Locust's figures and the raw
response times of every stage.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Pool
from locust import User, constant, constant_throughput, task
from locust.env import Environment

from load.client import nodes
from load.client.sessions import DeviceSession

SATURATE_USERS = 16
MEASURE_USERS = 8


class _Stage:
    """One stage's bookkeeping: raw samples once recording is on, and the identity queues."""

    def __init__(self) -> None:
        self.recording = False
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.failures: dict[str, int] = defaultdict(int)

    def on_request(
        self, name: str, response_time: float, exception: Exception | None, **_kw: Any
    ) -> None:
        if not self.recording:
            return
        if exception is None:
            self.samples[name].append(response_time)
        else:
            self.failures[name] += 1


class Calibration:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.target = plan["target"]
        self.online: deque[DeviceSession] = deque()
        self.fresh: deque[dict[str, Any]] = deque(plan["enroll_identities"])
        self.exhausted_at: float | None = None
        self.stage = _Stage()
        network = nodes.network()
        network.trust(self.target["dm"]["url"], self.target["dm"]["ca_pem"])

    def enroll_devices(self, identities: list[dict[str, Any]]) -> None:
        """Enroll the heartbeat/telemetry devices (before any stage; not measured)."""

        def one(identity: dict[str, Any]) -> None:
            session = DeviceSession(
                None,
                "device",
                claimed=(identity, self.target),
                fire=lambda **_kw: None,
                command_channel=False,
            )
            session.power_on()
            if session.online:
                self.online.append(session)

        Pool(8).map(one, identities)

    def user_class(self, kind: str, rate: float | None) -> type[User]:
        calibration = self

        class Calibrating(User):
            wait_time = constant(0) if rate is None else constant_throughput(rate)

            def on_start(self) -> None:
                self.session: DeviceSession | None = None
                if kind != "enroll" and calibration.online:
                    self.session = calibration.online.popleft()
                    self.session.driver.fire = self.environment.events.request.fire

            @task
            def once(self) -> None:
                if kind != "enroll":
                    if self.session is not None:
                        self.session.tick(kind)
                    return
                if not calibration.fresh:
                    calibration.exhausted_at = calibration.exhausted_at or time.monotonic()
                    gevent.sleep(0.1)
                    return
                device = DeviceSession(
                    None,
                    "device",
                    claimed=(calibration.fresh.popleft(), calibration.target),
                    fire=self.environment.events.request.fire,
                    command_channel=False,
                )
                device.power_on()
                device.close()

            def on_stop(self) -> None:
                if self.session is not None:
                    calibration.online.append(self.session)

        Calibrating.__name__ = f"Calibrating_{kind}"
        return Calibrating

    def run_stage(
        self, kind: str, users: int, rate: float | None, spawn_rate: float, seconds: float
    ) -> dict[str, Any]:
        self.stage = _Stage()
        self.exhausted_at = None
        user_class = self.user_class(kind, rate)
        env = Environment(user_classes=[user_class], catch_exceptions=True)
        stage = self.stage
        env.events.request.add_listener(stage.on_request)  # type: ignore[no-untyped-call]
        runner = env.create_local_runner()
        runner.start(users, spawn_rate=spawn_rate)
        gevent.sleep(users / spawn_rate + 0.2)  # spawned; each user has started its first task
        env.stats.reset_all()
        stage.recording = True
        started = time.monotonic()
        gevent.sleep(seconds)
        stage.recording = False
        window = (self.exhausted_at or time.monotonic()) - started
        figures = {
            e.name: {
                "requests": e.num_requests,
                "failures": e.num_failures,
                "p50_ms": e.get_response_time_percentile(0.5),
                "p95_ms": e.get_response_time_percentile(0.95),
            }
            for e in env.stats.entries.values()
        }
        runner.quit()
        return {
            "kind": kind,
            "users": users,
            "rate_per_user": rate,
            "spawn_rate": spawn_rate,
            "window_s": max(window, 1e-3),
            "locust": figures,
            "samples_ms": dict(stage.samples),
            "failures": dict(stage.failures),
        }

    def calibrate(self, kind: str, seconds: float, share: float) -> dict[str, Any]:
        primary = f"dm {kind}"
        saturate = self.run_stage(kind, SATURATE_USERS, None, 100.0, seconds)
        done = len(saturate["samples_ms"].get(primary, []))
        capacity = done / saturate["window_s"]
        rate_all = max(1.0, share * capacity)
        per_user = rate_all / MEASURE_USERS
        measure = self.run_stage(kind, MEASURE_USERS, per_user, rate_all, seconds)
        return {"saturate": saturate, "measure": measure}


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text())
    began = time.monotonic()
    calibration = Calibration(plan)
    calibration.enroll_devices(plan["device_identities"])
    timings = {"enroll_devices_s": round(time.monotonic() - began, 2)}
    result: dict[str, Any] = {"enrolled": len(calibration.online), "kinds": {}, "timings": timings}
    for kind in plan["kinds"]:
        began = time.monotonic()
        stages = calibration.calibrate(kind, float(plan["seconds"]), float(plan["share"]))
        result["kinds"][kind] = stages
        timings[f"{kind}_s"] = round(time.monotonic() - began, 2)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
