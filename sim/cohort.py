"""Steady-state device behaviour at scale: a cohort of devices driven by one SimPy process.

One process per device costs about a kilobyte and slows the event loop as their number grows. A
cohort keeps per-device state in numpy arrays (a few bytes per device) and its timers in a wheel of
one-second slots: at each tick it takes every device whose heartbeat or telemetry is due, updates
their state in one vectorised step, and files each device under its next due slot. Episodes (an
enrollment, an update, a call) still run as processes of their own (`sim.driver`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

HEARTBEAT, TELEMETRY = 0, 1
Batch = Callable[[int, np.ndarray, float], None]  # (kind, device ids, now)


class Cohort:
    """`size` devices reporting a heartbeat every `heartbeat_s` and telemetry every
    `telemetry_s` (each with a random phase and +-1 tick of jitter)."""

    def __init__(
        self,
        env: simpy.Environment,
        size: int,
        heartbeat_s: float,
        telemetry_s: float,
        gen: np.random.Generator,
        tick_s: float = 1.0,
        on_batch: Batch | None = None,
    ) -> None:
        self.env, self.size, self.tick_s, self.gen = env, size, tick_s, gen
        self.on_batch = on_batch
        self.periods = (max(2, round(heartbeat_s / tick_s)), max(2, round(telemetry_s / tick_s)))
        self.slots = max(self.periods) + 2
        self.last_seen = np.zeros(size, dtype=np.float32)
        self.heartbeats = np.zeros(size, dtype=np.uint32)
        self.reports = np.zeros(size, dtype=np.uint32)
        self.online = np.ones(size, dtype=np.bool_)
        self.events = 0
        self._wheels: list[list[list[np.ndarray]]] = []
        ids = np.arange(size, dtype=np.int32)
        for period in self.periods:
            wheel: list[list[np.ndarray]] = [[] for _ in range(self.slots)]
            phase = gen.integers(1, period + 1, size)
            order = np.argsort(phase, kind="stable")
            bounds = np.searchsorted(phase[order], np.arange(1, period + 2))
            for slot in range(1, period + 1):
                chunk = ids[order[bounds[slot - 1] : bounds[slot]]]
                if len(chunk):
                    wheel[slot].append(chunk)
            self._wheels.append(wheel)
        self.process = env.process(self._run())

    def _due(self, kind: int, tick: int) -> np.ndarray | None:
        slot = self._wheels[kind][tick % self.slots]
        if not slot:
            return None
        due = slot[0] if len(slot) == 1 else np.concatenate(slot)
        slot.clear()
        return due

    def _file(self, kind: int, tick: int, due: np.ndarray) -> None:
        wheel, period = self._wheels[kind], self.periods[kind]
        jitter = self.gen.integers(-1, 2, len(due))
        for offset in (-1, 0, 1):
            part = due[jitter == offset]
            if len(part):
                wheel[(tick + period + offset) % self.slots].append(part)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        tick = 0
        while True:
            yield self.env.timeout(self.tick_s)
            tick += 1
            now = self.env.now
            for kind in (HEARTBEAT, TELEMETRY):
                due = self._due(kind, tick)
                if due is None:
                    continue
                self._file(kind, tick, due)
                active = due[self.online[due]]
                self.last_seen[active] = now
                if kind == HEARTBEAT:
                    self.heartbeats[active] += 1
                else:
                    self.reports[active] += 1
                self.events += len(active)
                if self.on_batch is not None:
                    self.on_batch(kind, active, now)

    def memory_bytes(self) -> int:
        arrays = self.last_seen.nbytes + self.heartbeats.nbytes + self.reports.nbytes
        wheels = sum(a.nbytes for w in self._wheels for slot in w for a in slot)
        return arrays + self.online.nbytes + wheels
