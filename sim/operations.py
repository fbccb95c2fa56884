"""Fleet operations: every device runs the real DeviceAgent through boot and enrollment, takes a
configuration push on its command channel, and later renews its certificate by itself (a renewal
wave: the region issues certificates of `certificate_days`, and each agent renews when fewer than
`renew_before_days` are left on its NTP-set clock).

Gives how many devices applied the profile and how fast they acknowledged it, and the renewal
wave: how many renewed, when the wave ran, and the queue at each region meanwhile.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

import numpy as np
import simpy

from devices_virtual.agent import DeviceAgent, DeviceIdentity
from devices_virtual.models import CATALOGUE
from protocol.dm_channel import ChannelMessageType, Command, CommandKind
from sim.driver import Episode, Network, dm_answer
from sim.enrollment import dm_world, gc_paused
from sim.latency import rtt_seconds
from sim.result import Progress, SimResult, run_while
from sim.scenario import FleetOperations, SimScenario

DAY = 86400.0
VERSION = "sim-operations@1"
COMMAND_ID = 1


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def run_operations(
    scenario: SimScenario, seed: int | None = None, progress: Progress | None = None
) -> SimResult:
    spec = scenario.sim
    assert isinstance(spec, FleetOperations)
    seed = scenario.seed if seed is None else seed
    gen = np.random.default_rng(seed)
    env = simpy.Environment()
    service, fleet, pools, matrix, configs = dm_world(
        scenario, spec, gen, env, renew_before_s=spec.renew_before_days * DAY
    )
    timing = scenario.timing
    within = scenario.enroll_phase.within_s
    with gc_paused():
        power_on = np.sort(gen.uniform(0, within, fleet.size)).tolist()
    deployed = [i for i in range(fleet.size) if bool(fleet.deployed[i])]
    episodes: list[Episode] = []
    command = Command(COMMAND_ID, CommandKind.CONFIG, {"version": VERSION, "values": spec.profile})

    def finished(agent: DeviceAgent) -> bool:
        return agent.renewals >= 1 and agent.configuration_version is not None

    def device(index: int, at: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(at)
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
        network = Network(rtt_seconds(site.site.location, spec.dm_column[region], matrix))
        answer = dm_answer(True, spec.certificate_days * DAY)
        episode = Episode(
            env, DeviceAgent(identity, config), pools[region], service, network, answer, finished
        )
        episodes.append(episode)
        yield env.process(episode.run())

    def push() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(spec.push_at_s)
        for episode in episodes:
            episode.command(command.encode())

    series: list[dict[str, float]] = []

    def sample() -> Generator[simpy.Event, Any, None]:
        while True:
            row = {
                "t_s": env.now,
                "applied": float(sum(e.agent.configuration_version == VERSION for e in episodes)),
                "renewed": float(sum(e.agent.renewals >= 1 for e in episodes)),
            }
            for r, pool in pools.items():
                row[f"queue_{r}"] = float(pool.queue_length)
            series.append(row)
            yield env.timeout(spec.sample_every_s)

    for index, at in zip(deployed, power_on, strict=False):
        env.process(device(index, at))
    env.process(push())
    env.process(sample())
    run_while(
        env,
        spec.hours * 3600,
        lambda: len(episodes) < len(deployed) or not all(e.closed for e in episodes),
        progress,
        step=max(spec.sample_every_s, 1.0),
    )
    acks = [e.acked_at[COMMAND_ID] - spec.push_at_s for e in episodes if COMMAND_ID in e.acked_at]
    results = [
        m.get("result", {})
        for e in episodes
        for m in e.sent
        if m.get("type") == ChannelMessageType.ACK
    ]
    applied = sum(1 for e in episodes if e.agent.configuration_version == VERSION)
    renewed = sorted(e.renewed_at for e in episodes if e.renewed_at is not None)
    metrics: dict[str, Any] = {
        "devices": len(deployed),
        "config_pushed": len(episodes),
        "config_acknowledged": len(acks),
        "config_applied": applied,
        "config_refused": sum(1 for r in results if r.get("applied") is False),
        "config_ack_p50_s": _percentile(acks, 50),
        "config_ack_p95_s": _percentile(acks, 95),
        "renewed": len(renewed),
        "all_renewed": len(renewed) == len(deployed),
        "renewal_wave_start_h": round(renewed[0] / 3600, 3) if renewed else None,
        "renewal_wave_end_h": round(renewed[-1] / 3600, 3) if renewed else None,
    }
    for r, pool in pools.items():
        metrics[f"max_queue_{r}"] = pool.max_queue
        metrics[f"utilisation_{r}"] = round(pool.utilisation(), 4)
    return SimResult(scenario.name, spec.kind, seed, metrics, {"operations": series})
