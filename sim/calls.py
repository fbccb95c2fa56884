"""Call load and failover: conferences arrive per site by local time of day, are placed by the
meeting service's own placement function, and hold participant slots on a relay of that region.

- Arrivals: a Poisson process per site whose rate follows the site's local hour (thinning).
- Placement: `services.meeting.domain.placement.place` on the initial participants' locations.
- Relays: each carries `relay_capacity` participants; a conference goes to the relay with the
  most room; with no relay that fits, the join is blocked.
- Failover: a failed relay's conferences move to other relays of its region (a conference that
  fits nowhere is dropped); a replacement relay comes up after a delay; joins blocked while the
  capacity is down are counted apart.

Gives blocking per region, utilisation, the busy hour, dropped calls and the replacement times.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import simpy

from services.meeting.domain.placement import place
from sim.fleet import expand
from sim.latency import latency_matrix
from sim.result import Progress, SimResult, run_until
from sim.scenario import CallLoad, SimScenario

PLACEMENT_SAMPLE = 200


@dataclass
class Relay:
    capacity: int
    used: int = 0
    alive: bool = True
    calls: set[int] = field(default_factory=set)

    @property
    def free(self) -> int:
        return self.capacity - self.used if self.alive else -1


@dataclass
class Region:
    name: str
    relays: list[Relay]
    offered: int = 0
    blocked: int = 0
    blocked_while_down: int = 0
    carried: float = 0.0  # participant-seconds
    capacity_time: float = 0.0  # participant-seconds of alive capacity
    last: float = 0.0
    hourly: dict[int, float] = field(default_factory=dict)  # UTC hour -> participant-seconds
    down: int = 0  # relays failed and not yet replaced

    def account(self, now: float) -> None:
        span = now - self.last
        if span > 0:
            used = sum(r.used for r in self.relays if r.alive)
            self.carried += used * span
            self.capacity_time += sum(r.capacity for r in self.relays if r.alive) * span
            hour = int(self.last // 3600)
            self.hourly[hour] = self.hourly.get(hour, 0.0) + used * span
        self.last = now

    def best_relay(self, size: int, exclude: Relay | None = None) -> Relay | None:
        best = max((r for r in self.relays if r is not exclude), key=lambda r: r.free, default=None)
        return best if best is not None and best.free >= size else None


def _offsets(scenario: SimScenario, start: dt.datetime) -> list[float]:
    fleet = expand(scenario)
    return [
        (start.astimezone(ZoneInfo(s.site.time_zone)).utcoffset() or dt.timedelta()).total_seconds()
        for s in fleet.sites
    ]


def run_calls(
    scenario: SimScenario,
    seed: int | None = None,
    progress: Progress | None = None,
    relays: dict[str, int] | None = None,
) -> SimResult:
    spec = scenario.sim
    assert isinstance(spec, CallLoad)
    seed = scenario.seed if seed is None else seed
    gen = np.random.default_rng(seed)
    env = simpy.Environment()
    matrix = latency_matrix()
    counts = {**spec.relays, **(relays or {})}
    region_names = [r for r in counts if counts[r] > 0] or list(counts)
    regions = {r: Region(r, [Relay(spec.relay_capacity) for _ in range(counts[r])]) for r in counts}
    fleet = expand(scenario)
    rooms = fleet.devices_per_site().astype(float)
    locations = [s.site.location for s in fleet.sites]
    offsets = _offsets(scenario, spec.start)
    start_hour = spec.start.hour + spec.start.minute / 60
    weights = np.asarray(spec.diurnal) / max(spec.diurnal)
    peak_rate = float(rooms.sum()) * spec.calls_per_room_hour / 3600
    site_p = rooms / rooms.sum()
    sizes = np.asarray(list(spec.sizes), dtype=int)
    size_p = np.asarray(list(spec.sizes.values()), dtype=float)
    size_p /= size_p.sum()
    calls: dict[int, tuple[Region, Relay, int]] = {}
    placements: list[dict[str, Any]] = []
    totals = {"dropped": 0, "moved": 0, "calls": 0}
    replacements: list[dict[str, float]] = []

    def end(call_id: int) -> None:
        held = calls.pop(call_id, None)
        if held is None:  # dropped at a relay failure
            return
        region, relay, size = held
        region.account(env.now)
        relay.used -= size
        relay.calls.discard(call_id)

    def end_event(call_id: int, _event: simpy.Event) -> None:
        end(call_id)

    def arrivals() -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(gen.exponential(1 / peak_rate))
            site = int(gen.choice(len(rooms), p=site_p))
            local = (start_hour + (env.now + offsets[site]) / 3600) % 24
            if gen.random() >= weights[int(local)]:
                continue  # thinning: the site's local hour is quieter than the busiest
            size = int(gen.choice(sizes, p=size_p))
            others = gen.random(size - 1) < spec.remote_share
            remote = gen.choice(len(rooms), size=size - 1, p=site_p)
            who = [locations[site]] + [
                locations[int(r)] if o else locations[site]
                for o, r in zip(others.tolist(), remote.tolist(), strict=True)
            ]
            initial = who[: spec.initial_participants]
            chosen = place(initial, matrix, region_names)
            if len(placements) < PLACEMENT_SAMPLE:
                placements.append(
                    {"locations": initial, "region": chosen.region, "candidates": chosen.candidates}
                )
            region = regions[chosen.region]
            region.account(env.now)
            region.offered += 1
            relay = region.best_relay(size)
            if relay is None:
                region.blocked += 1
                region.blocked_while_down += region.down > 0
                continue
            call_id = totals["calls"] = totals["calls"] + 1
            relay.used += size
            relay.calls.add(call_id)
            calls[call_id] = (region, relay, size)
            duration = gen.exponential(spec.mean_call_min * 60)
            env.timeout(duration).callbacks.append(partial(end_event, call_id))

    def fail(region: Region, count: int) -> None:
        region.account(env.now)
        alive = [r for r in region.relays if r.alive]
        for relay in sorted(alive, key=lambda r: -r.used)[:count]:
            relay.alive = False
            region.down += 1
            for call_id in sorted(relay.calls, key=lambda c: -calls[c][2]):
                _, _, size = calls[call_id]
                target = region.best_relay(size, exclude=relay)
                if target is None:
                    totals["dropped"] += 1
                    del calls[call_id]
                    continue
                target.used += size
                target.calls.add(call_id)
                calls[call_id] = (region, target, size)
                totals["moved"] += 1
            relay.used, relay.calls = 0, set()
            env.process(replace(region, relay))

    def replace(region: Region, relay: Relay) -> Generator[simpy.Event, Any, None]:
        failed_at = env.now
        mean, cv = spec.replacement_min * 60, spec.replacement_cv
        if cv > 0:
            sigma2 = math.log1p(cv * cv)
            delay = float(gen.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2)))
        else:
            delay = mean
        yield env.timeout(delay)
        region.account(env.now)
        relay.alive = True
        region.down -= 1
        replacements.append(
            {"region_failed_at_s": failed_at, "replaced_after_s": env.now - failed_at}
        )

    def faults() -> Generator[simpy.Event, Any, None]:
        for failure in sorted(spec.failures, key=lambda f: f.at_hour):
            yield env.timeout(max(0.0, failure.at_hour * 3600 - env.now))
            fail(regions[failure.region], failure.relays)

    series: list[dict[str, float]] = []

    def sample() -> Generator[simpy.Event, Any, None]:
        while True:
            row = {"t_s": env.now}
            for name, region in regions.items():
                row[f"used_{name}"] = float(sum(r.used for r in region.relays if r.alive))
                row[f"capacity_{name}"] = float(sum(r.capacity for r in region.relays if r.alive))
            series.append(row)
            yield env.timeout(spec.sample_every_s)

    env.process(arrivals())
    env.process(faults())
    env.process(sample())
    horizon = spec.hours * 3600
    run_until(env, horizon, progress)
    offered = sum(r.offered for r in regions.values())
    blocked = sum(r.blocked for r in regions.values())
    metrics: dict[str, Any] = {
        "rooms": int(rooms.sum()),
        "offered": offered,
        "blocked": blocked,
        "blocking": blocked / offered if offered else 0.0,
        "dropped_calls": totals["dropped"],
        "moved_calls": totals["moved"],
        "relay_failures": sum(f.relays for f in spec.failures),
        "replacements": len(replacements),
        "max_replacement_s": max((r["replaced_after_s"] for r in replacements), default=None),
    }
    for name, region in regions.items():
        region.account(horizon)
        busy = max(region.hourly, key=lambda h: region.hourly[h], default=None)
        metrics[f"relays_{name}"] = len(region.relays)
        metrics[f"offered_{name}"] = region.offered
        metrics[f"blocking_{name}"] = region.blocked / region.offered if region.offered else 0.0
        metrics[f"blocked_while_down_{name}"] = region.blocked_while_down
        metrics[f"utilisation_{name}"] = (
            region.carried / region.capacity_time if region.capacity_time else 0.0
        )
        metrics[f"busy_hour_utc_{name}"] = (
            (busy + spec.start.hour) % 24 if busy is not None else None
        )
        metrics[f"busy_hour_erlangs_{name}"] = (
            region.hourly[busy] / 3600 if busy is not None else 0.0
        )
    return SimResult(
        scenario.name,
        spec.kind,
        seed,
        metrics,
        {"occupancy": series, "placements": placements, "replacements": replacements},
    )


def blocking_curve(
    scenario: SimScenario, region: str, counts: list[int], seed: int | None = None
) -> list[dict[str, float]]:
    """Blocking in `region` for each relay count (other regions as in the scenario)."""
    rows = []
    for count in counts:
        result = run_calls(scenario, seed, relays={region: count})
        rows.append(
            {
                "relays": float(count),
                "blocking": float(result.metrics[f"blocking_{region}"]),
                "utilisation": float(result.metrics[f"utilisation_{region}"]),
            }
        )
    return rows
