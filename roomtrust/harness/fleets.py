"""Real virtual devices (the asyncio driver) against a DM region, for tests and features.

A fleet is deployed and enrolled through `FleetRun` and keeps running on the test's event loop
while the test drives the DM admin API from a worker thread (`in_thread`), as an administrator of
the fleet's own enterprise.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import PASSWORD, DeviceSpec, FleetRun
from devices_virtual.scenario import Scenario, parse_scenario
from protocol.stack import Stack
from services.dm.client import DmAdmin

T = TypeVar("T")
_EMAILS: weakref.WeakKeyDictionary[FleetRun, str] = weakref.WeakKeyDictionary()


def fleet_scenario(
    name: str,
    models: dict[str, int],
    sites: list[dict[str, str]] | None = None,
    region: str = "us",
) -> Scenario:
    """One fleet with slow timers, so that only what the test does makes traffic."""
    return parse_scenario(
        {
            "name": name,
            "seeds": [7],
            "timing": {"heartbeat_s": 600, "telemetry_s": 3600, "boot_scale": 0},
            "fleets": [
                {
                    "name": "rooms",
                    "dm_region": region,
                    "sites": sites or [{"name": "HQ", "time_zone": "UTC"}],
                    "models": models,
                }
            ],
            "phases": [{"kind": "deploy"}, {"kind": "enroll"}],
        }
    )


async def start_fleet(
    stack: Stack,
    work_dir: Path,
    scenario: Scenario,
    timeout: float = 90,
    clock: Callable[[], float] = time.time,
) -> FleetRun:
    """Deploy the fleet's devices and power each one up as soon as it is deployed (so deploying
    and enrolling overlap), then wait until every device has its command channel open. `clock`
    is the time the stand-in NTP servers tell the devices (a test's injectable clock)."""
    run = FleetRun(scenario, stack, work_dir, keep_connections=True, clock=clock)
    await run.start()
    state = run.fleets["rooms"]
    email = f"fleet-{secrets.token_hex(4)}@example.com"
    account = {"email": email, "password": PASSWORD, "first_name": "Fleet", "last_name": "Admin"}
    await state.admin._call("POST", "/v1/enterprises", {"name": scenario.name, "admin": account})
    login = await state.admin._call(
        "POST", "/v1/auth/login", {"email": email, "password": PASSWORD}
    )
    state.admin.http.headers["authorization"] = f"Bearer {login['token']}"
    _EMAILS[run] = email
    for site in state.fleet.sites:
        state.site_ids.append(await state.admin.create_site(site.name, site.time_zone))
    limit = asyncio.Semaphore(12)

    async def deploy(spec: DeviceSpec, device: VirtualDevice) -> None:
        async with limit:
            await state.admin.deploy(spec, state.site_ids[spec.site])
        device.power_on()

    await asyncio.gather(*(deploy(s, d) for s, d in zip(state.specs, state.devices, strict=True)))
    try:
        await wait_for_devices(
            lambda: all(d.agent.channel_open for d in state.devices),
            timeout,
            f"{len(state.devices)} devices to come online",
        )
    except AssertionError as late:
        phases = Counter(d.agent.phase.value for d in state.devices)
        channels = sum(d.agent.channel_open for d in state.devices)
        stats: Counter[str] = Counter()
        for device in state.devices:
            stats.update(device.stats)
        await run.close()
        raise AssertionError(
            f"{late}: phases {dict(phases)}, {channels} channels, {stats}"
        ) from None
    return run


def fleet_admin(run: FleetRun) -> DmAdmin:
    """A DM admin client logged in (anew) as the fleet's own administrator."""
    state = run.fleets["rooms"]
    admin = DmAdmin(state.dm_url, state.dm_ca)
    admin.login(_EMAILS[run], PASSWORD)
    return admin


def devices(run: FleetRun) -> list[VirtualDevice]:
    return run.fleets["rooms"].devices


def device_ids(run: FleetRun) -> dict[str, VirtualDevice]:
    return {str(d.agent.device_id): d for d in devices(run)}


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def wait_until(
    check: Callable[[], T], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Poll `check` (run in a thread) until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await in_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_devices(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll a condition on the devices themselves (on the loop, no thread)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
