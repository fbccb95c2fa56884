"""Enrollment storm: a deployment wave powers devices up, and each runs the real DeviceAgent from
boot to enrollment against its DM region's replicas.

Gives the time until every deployed device is enrolled, enrollment latency percentiles, and the
queue length at each region over time. Devices nobody deployed are refused (403) and counted.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import simpy

from devices_virtual.agent import AgentConfig, DeviceAgent, DeviceIdentity, Phase
from devices_virtual.models import CATALOGUE
from sim.driver import Episode, Network, dm_answer
from sim.fleet import FleetArrays, expand
from sim.latency import latency_matrix, rtt_seconds
from sim.result import Progress, SimResult, run_while
from sim.scenario import EnrollmentStorm, FleetOperations, SimScenario
from sim.service import ServerPool


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while building a large population (it would rescan every new object)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def _finished(agent: DeviceAgent) -> bool:
    return agent.phase is Phase.ONLINE or agent.enroll_attempts > 0


def run_enrollment(
    scenario: SimScenario, seed: int | None = None, progress: Progress | None = None
) -> SimResult:
    spec = scenario.sim
    assert isinstance(spec, EnrollmentStorm)
    seed = scenario.seed if seed is None else seed
    gen = np.random.default_rng(seed)
    env = simpy.Environment()
    service, fleet, pools, matrix, configs = dm_world(scenario, spec, gen, env)
    timing = scenario.timing
    phase = scenario.enroll_phase
    with gc_paused():
        power_on = np.sort(gen.uniform(0, phase.within_s, fleet.size))
        order = gen.permutation(fleet.size)
    latencies: list[float] = []
    last_enrolled = [0.0]
    refused = [0]
    started = [0]
    n_deployed = int(fleet.deployed.sum())

    def device(index: int) -> Generator[simpy.Event, Any, None]:
        site = fleet.sites[int(fleet.site[index])]
        model = CATALOGUE[fleet.models[int(fleet.model[index])]]
        region = site.dm_region
        mac = "02:" + ":".join(f"{index >> s & 255:02x}" for s in (24, 16, 8, 0))
        identity = DeviceIdentity(
            mac, f"SN{index:08d}", model, f"room-{index}", "sim-csr", site.site.time_zone
        )
        config = configs[region]
        if timing.boot_scale != 1:
            config = replace(config, boot_seconds=model.boot_seconds * timing.boot_scale)
        agent = DeviceAgent(identity, config)
        network = Network(rtt_seconds(site.site.location, spec.dm_column[region], matrix))
        deployed = bool(fleet.deployed[index])
        answer = dm_answer(deployed)
        episode = Episode(env, agent, pools[region], service, network, answer, _finished)
        took = yield env.process(episode.run())
        if agent.enrolled:
            latencies.append(took)
            last_enrolled[0] = env.now
        else:
            refused[0] += 1

    def wave() -> Generator[simpy.Event, Any, None]:
        for at, index in zip(power_on.tolist(), order.tolist(), strict=True):
            if at > env.now:
                yield env.timeout(at - env.now)
            started[0] += 1
            env.process(device(index))

    queue_series: list[dict[str, float]] = []

    def sample() -> Generator[simpy.Event, Any, None]:
        while True:
            row = {"t_s": env.now, "enrolled": float(len(latencies))}
            for r, pool in pools.items():
                row[f"queue_{r}"] = float(pool.queue_length)
                row[f"busy_{r}"] = float(pool.busy)
            queue_series.append(row)
            yield env.timeout(spec.sample_every_s)

    env.process(wave())
    env.process(sample())
    horizon = spec.hours * 3600
    run_while(
        env,
        horizon,
        lambda: len(latencies) + refused[0] < fleet.size,
        progress,
        step=max(spec.sample_every_s, 1.0),
    )
    done = len(latencies) == n_deployed
    metrics: dict[str, Any] = {
        "devices": fleet.size,
        "deployed": n_deployed,
        "enrolled": len(latencies),
        "refused_undeployed": refused[0],
        "all_enrolled": done,
        "time_to_all_enrolled_s": round(last_enrolled[0], 3) if done else None,
        "enroll_p50_s": float(np.percentile(latencies, 50)) if latencies else None,
        "enroll_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
    }
    for r, pool in pools.items():
        metrics[f"replicas_{r}"] = pool.servers
        metrics[f"max_queue_{r}"] = pool.max_queue
        metrics[f"utilisation_{r}"] = round(pool.utilisation(), 4)
        metrics[f"mean_wait_{r}_s"] = pool.wait_sum / pool.served if pool.served else 0.0
    return SimResult(scenario.name, spec.kind, seed, metrics, {"queue": queue_series})


def dm_world(
    scenario: SimScenario,
    spec: EnrollmentStorm | FleetOperations,
    gen: np.random.Generator,
    env: simpy.Environment,
    **agent: Any,
) -> tuple[Callable[[str], float], FleetArrays, dict[str, ServerPool], Any, dict[str, AgentConfig]]:
    """What a DM simulation runs in: service-time draws per purpose, the expanded fleet, a server
    pool per DM region, the latency matrix, and the agent configuration per region (`agent`
    adds settings such as `renew_before_s`)."""
    times = spec.service_times()
    samplers = {name: model.sampler(gen) for name, model in times.items()}
    default = samplers.get("heartbeat") or next(iter(samplers.values()))

    def service(purpose: str) -> float:
        return (samplers.get(purpose) or default)()

    fleet = expand(scenario)
    regions = sorted({s.dm_region for s in fleet.sites})
    servers = times["enroll"].servers if "enroll" in times else 1
    pools = {r: ServerPool(env, r, spec.replicas.get(r, servers)) for r in regions}
    timing = scenario.timing
    configs = {
        r: AgentConfig(
            dm_url=f"https://dm.{r}.sim",
            heartbeat_s=timing.heartbeat_s,
            telemetry_s=timing.telemetry_s,
            ntp_interval_s=timing.ntp_interval_s,
            **agent,
        )
        for r in regions
    }
    return service, fleet, pools, latency_matrix(), configs
