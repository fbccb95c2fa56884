"""Service-time models: an endpoint is a FIFO queue with c servers and a service-time distribution.

Parameters come from the scenario's `sim.services` or from a calibration file
(`scenarios/calibration/*.yaml`, written by `roomtrust load calibrate`):

    endpoints:
      enroll:    {servers: 4, distribution: lognormal, mean_s: 0.045, cv: 0.6}
      heartbeat: {servers: 4, distribution: exponential, mean_s: 0.004}

The queue is driven by SimPy events with callbacks, not a process per request, and records its
length over time for the plots.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import simpy
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Distribution = Literal["exponential", "lognormal", "gamma", "deterministic"]


class ServiceTime(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: int = Field(default=1, ge=1, description="replicas/workers serving in parallel")
    distribution: Distribution = "exponential"
    mean_s: float = Field(gt=0)
    cv: float = Field(default=1.0, ge=0, description="coefficient of variation (lognormal, gamma)")

    def sampler(self, gen: np.random.Generator, block: int = 4096) -> Callable[[], float]:
        """A function drawing one service time; variates are drawn in blocks."""
        mean, cv = self.mean_s, self.cv
        if self.distribution == "deterministic" or cv == 0:
            return lambda: mean

        def draw() -> list[float]:
            if self.distribution == "exponential":
                values = gen.exponential(mean, block)
            elif self.distribution == "lognormal":
                sigma2 = math.log1p(cv * cv)
                values = gen.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), block)
            else:
                shape = 1 / (cv * cv)
                values = gen.gamma(shape, mean / shape, block)
            return [float(v) for v in values]

        buffer: list[float] = []

        def one() -> float:
            if not buffer:
                buffer.extend(draw())
            return buffer.pop()

        return one


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = ""
    endpoints: dict[str, ServiceTime]


def load_calibration(path: Path | str) -> Calibration:
    path = Path(path)
    try:
        return Calibration.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None


class ServerPool:
    """c servers (replicas) in front of one FIFO queue; `submit` returns an event fired when served."""

    def __init__(self, env: simpy.Environment, name: str, servers: int) -> None:
        self.env, self.name, self.servers = env, name, servers
        self._busy = 0
        self._queue: deque[tuple[simpy.Event, float, float]] = deque()
        self.served = 0
        self.wait_sum = 0.0
        self.busy_time = 0.0
        self.max_queue = 0
        self._last_change = 0.0

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> int:
        return self._busy

    def _account(self) -> None:
        now = self.env.now
        self.busy_time += self._busy * (now - self._last_change)
        self._last_change = now

    def submit(self, service_s: float) -> simpy.Event:
        """A request needing `service_s` seconds of one server; the event fires when done."""
        done = self.env.event()
        if self._busy < self.servers:
            self._account()
            self._busy += 1
            self._start(done, self.env.now, service_s)
        else:
            self._queue.append((done, self.env.now, service_s))
            self.max_queue = max(self.max_queue, len(self._queue))
        return done

    def _start(self, done: simpy.Event, queued_at: float, service_s: float) -> None:
        self.wait_sum += self.env.now - queued_at
        timer = self.env.timeout(service_s)
        timer.callbacks.append(lambda _e: self._finish(done))

    def _finish(self, done: simpy.Event) -> None:
        self.served += 1
        done.succeed()
        if self._queue:
            self._start(*self._queue.popleft())
        else:
            self._account()
            self._busy -= 1

    def utilisation(self) -> float:
        self._account()
        elapsed = self.env.now
        return self.busy_time / (elapsed * self.servers) if elapsed > 0 else 0.0
