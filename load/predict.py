"""The simulator's run of a Locust load: the same DeviceAgent, the same users and pace, the region as
a pool of c servers with the calibrated service times (`sim.service`).

Each simulated user does what a Locust user of `load.client` does: a heartbeat or telemetry user
ticks its agent's timer, an enrollment user powers a new agent on and runs its episode (enroll, then
the first heartbeat and telemetry). Every request the agent asks for takes a turn in the region's
pool, one after the other, as the gevent driver sends them; `constant_throughput` waits out the rest
of each period. Users start `1/spawn_rate` apart, and only requests that complete in the measured
window count, as in the calibration's own measurement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from devices_virtual.agent import (
    AgentConfig,
    DeviceAgent,
    DeviceIdentity,
    HttpRequest,
    HttpResponse,
    NtpQuery,
    NtpReply,
    PowerOn,
    TimerFired,
)
from devices_virtual.models import get_model
from sim.driver import dm_answer
from sim.service import ServerPool, ServiceTime

MODEL = "MeetingBar A30"
SPAWN_SETTLE_S = 0.2  # the calibration waits this long after spawning before it measures


@dataclass(frozen=True, slots=True)
class LoadShape:
    kind: str  # the task: heartbeat | telemetry | enroll
    users: int
    rate_per_user: float | None  # None: back to back
    spawn_rate: float
    window_s: float


@dataclass(frozen=True, slots=True)
class Figures:
    requests: int
    throughput: float  # per second
    p50_ms: float
    p95_ms: float


def _agent(index: int) -> DeviceAgent:
    identity = DeviceIdentity(
        f"02:00:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}:01",
        f"SIM{index:08d}",
        get_model(MODEL),
        f"sim {index}",
        "sim-csr",
    )
    config = AgentConfig(
        dm_url="https://dm.sim", boot_seconds=0, connectivity_checks=False, command_channel=False
    )
    return DeviceAgent(identity, config)


def simulate_load(
    shape: LoadShape,
    times: Mapping[str, ServiceTime],
    servers: int,
    seed: int = 1,
    window_s: float | None = None,
) -> dict[str, Figures]:
    """Per request purpose (enroll, heartbeat, telemetry): requests, throughput, p50, p95."""
    gen = np.random.default_rng(seed)
    samplers = {name: t.sampler(gen) for name, t in times.items()}
    primary = samplers.get(shape.kind) or next(iter(samplers.values()))
    env = simpy.Environment()
    pool = ServerPool(env, "dm", servers)
    answer = dm_answer(True)
    start = shape.users / shape.spawn_rate + SPAWN_SETTLE_S
    window = window_s or shape.window_s
    end = start + window
    samples: dict[str, list[float]] = defaultdict(list)
    made = [0]

    def perform(agent: DeviceAgent, actions: list[Any]) -> Generator[simpy.Event, Any, None]:
        for action in actions:
            if isinstance(action, HttpRequest):
                began = env.now
                yield pool.submit((samplers.get(action.purpose) or primary)())
                if start <= env.now < end:
                    samples[action.purpose].append(env.now - began)
                status, body = answer(agent, action)
                reply = HttpResponse(env.now, action.request_id, status, body)
                yield from perform(agent, agent.handle(reply))
            elif isinstance(action, NtpQuery):
                reply_ntp = NtpReply(env.now, action.request_id, env.now)
                yield from perform(agent, agent.handle(reply_ntp))

    def online(agent: DeviceAgent) -> None:
        """Enroll instantly (the calibration enrolls its devices before measuring)."""
        pending = agent.handle(PowerOn(0.0)) + agent.handle(TimerFired(0.0, "boot"))
        while pending:
            action = pending.pop(0)
            if isinstance(action, HttpRequest):
                status, body = answer(agent, action)
                pending += agent.handle(HttpResponse(0.0, action.request_id, status, body))
            elif isinstance(action, NtpQuery):
                pending += agent.handle(NtpReply(0.0, action.request_id, 0.0))

    def new_agent() -> DeviceAgent:
        made[0] += 1
        return _agent(made[0])

    def user(index: int) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(index / shape.spawn_rate)
        agent = None
        if shape.kind != "enroll":
            agent = new_agent()
            online(agent)
        while env.now < end:
            began = env.now
            if agent is None:
                fresh = new_agent()
                yield from perform(fresh, fresh.handle(PowerOn(env.now)))
                yield from perform(fresh, fresh.handle(TimerFired(env.now, "boot")))
            else:
                yield from perform(agent, agent.handle(TimerFired(env.now, shape.kind)))
            if shape.rate_per_user is not None:
                wait = 1.0 / shape.rate_per_user - (env.now - began)
                if wait > 0:
                    yield env.timeout(wait)

    for index in range(shape.users):
        env.process(user(index))
    env.run(until=end)
    return {
        purpose: Figures(
            requests=len(values),
            throughput=len(values) / window,
            p50_ms=float(np.percentile(values, 50)) * 1000.0,
            p95_ms=float(np.percentile(values, 95)) * 1000.0,
        )
        for purpose, values in samples.items()
        if values
    }
