"""The DM region as three replicas behind HAProxy, on one PostgreSQL database, with 300 real
virtual devices (and 20 more of another model) reaching it only through the balancer: the
region `roomtrust up --replicas 3` starts (`launcher.launch_replicated_region`), one for the
module, with one fleet that every proof shares (deploying and enrolling 320 devices is the costly
part). The proofs run in this order, each leaving the fleet as the next needs it:

1. A config push reaches every device whichever replica holds its channel: all 320 agents apply
   and acknowledge it within 5 s, with no channel reconnecting; an un-deploy closes the device's
   channel within 1 s whichever replica holds it (one device on each replica); powered-off devices
   each get exactly one active offline alert, while a transaction holds `LOCK TABLE alerts` across
   the evaluation that finds them, and no online device gets one.
2. The 300-device rollout of `test_dm_firmware_live.py` with its planted bad signature: every wave
   starts exactly once (operation log), no device answers `busy`, and the second rollout pauses at
   its threshold from real refusals (bad signature) only.
3. SIGKILL of the leader replica during a rollout while the devices send telemetry: the lease
   moves, the rollout finishes, the devices reconnect through HAProxy (which takes the dead replica
   out), and every reading a device had acknowledged is stored exactly once (by report id).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from devices_virtual.agent.firmware import BUSY, virtual_image
from devices_virtual.driver.device import VirtualDevice
from devices_virtual.scenario import parse_scenario
from protocol.stack import Replica
from roomtrust.container_host import postgres_missing
from roomtrust.harness.fleets import devices, fleet_admin, start_fleet
from roomtrust.harness.replicas import BalancedRegion, FleetThread, balanced_region
from roomtrust.harness.stores import database_url
from roomtrust.stack.balancer import haproxy_missing
from services.common import firmware
from services.dm.client import DmAdmin
from tests.dm.test_dm_firmware_live import BAR, BAR_FACTORY, GOOD, PLANTED, plant_bad_signature

T = TypeVar("T")
DESK = "DeskVision A24"
FLEET = 300
EXTRA = 20  # the other model: the un-deploy and offline proofs take theirs from these
THIRD = "264.413.0.0"
REPLICAS = 3
REPORT_EVERY_S = 10  # heartbeat and telemetry of every device
OFFLINE_AFTER_S = 21  # > the report interval: a device online never crosses it
SETTINGS = {
    "ROOMTRUST_DM_ROLLOUT_TICK_SECONDS": "0.5",
    "ROOMTRUST_DM_ALERT_EVALUATION_SECONDS": "2",
    "ROOMTRUST_OFFLINE_ALERT_MINUTES": str(OFFLINE_AFTER_S / 60),
}

pytestmark = [
    pytest.mark.database,
    pytest.mark.postgres,
    pytest.mark.skipif(
        database_url() is None,
        reason="three replicas and 320 devices take minutes: they run in the PostgreSQL pass "
        "(ROOMTRUST_DATABASE_URL=postgresql+psycopg://...)",
    ),
    pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing())),
    pytest.mark.skipif(bool(haproxy_missing()), reason=str(haproxy_missing())),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BalancedRegion]:
    with balanced_region(tmp_path_factory.mktemp("replicas"), REPLICAS, extra_env=SETTINGS) as r:
        yield r
        (found,) = rows(
            r, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        print(f"deadlocks PostgreSQL detected over the module: {found[0]}")


class Fleet:
    """The module's fleet on its own loop, with its administrator."""

    def __init__(self, thread: FleetThread, admin: DmAdmin, site_id: str) -> None:
        self.thread = thread
        self.admin = admin
        self.site_id = site_id
        assert thread.run is not None
        self.devices: list[VirtualDevice] = devices(thread.run)
        self.off: list[VirtualDevice] = []  # powered off by a proof (their agents know nothing)

    def live(self) -> list[VirtualDevice]:
        """The devices powered on and enrolled (not un-deployed)."""
        return [d for d in self.devices if d.agent.enrolled and d not in self.off]

    def of(self, model: str) -> list[VirtualDevice]:
        return [d for d in self.devices if d.agent.identity.model.name == model]

    def by_id(self) -> dict[str, VirtualDevice]:
        return {str(d.agent.device_id): d for d in self.devices}


@pytest.fixture(scope="module")
def fleet(region: BalancedRegion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    scenario = parse_scenario(
        {
            "name": "replicas",
            "seeds": [11],
            "timing": {
                "heartbeat_s": REPORT_EVERY_S,
                "telemetry_s": REPORT_EVERY_S,
                "boot_scale": 0,
            },
            "fleets": [
                {
                    "name": "rooms",
                    "dm_region": region.region,
                    "sites": [{"name": "HQ", "time_zone": "UTC"}],
                    "models": {BAR: FLEET, DESK: EXTRA},
                }
            ],
            "phases": [{"kind": "deploy"}, {"kind": "enroll"}],
        }
    )
    thread = FleetThread()
    try:
        work = tmp_path_factory.mktemp("fleet")
        thread.run = thread.call(start_fleet(region.stack, work, scenario, timeout=240))
        admin = fleet_admin(thread.run)
        site_id = thread.run.fleets["rooms"].site_ids[0]
        yield Fleet(thread, admin, site_id)
        admin.close()
    finally:
        thread.close()


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def rows(region: BalancedRegion, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = region.engine()
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def connected(region: BalancedRegion) -> dict[str, int]:
    return {r.name: int(region.health(r)["connected"]) for r in region.alive()}


def one_less(region: BalancedRegion, before: dict[str, int]) -> dict[str, int] | None:
    now = connected(region)
    return now if sum(now.values()) == sum(before.values()) - 1 else None


def one_leader(region: BalancedRegion) -> Replica | None:
    found = region.leaders()
    return found[0] if len(found) == 1 else None


def channel_closes(fleet: Fleet) -> int:
    return sum(
        n for d in fleet.devices for k, n in d.stats.items() if k.startswith("channel_closed")
    )


# -- 1. config push, un-deploy and offline alerts across replicas ---------------------------------


def test_a_push_reaches_every_agent_an_undeploy_closes_anywhere_and_offline_alerts_stay_single(
    region: BalancedRegion, fleet: Fleet
) -> None:
    spread = connected(region)
    assert sum(spread.values()) == FLEET + EXTRA
    assert all(count > 0 for count in spread.values()), spread  # leastconn spread the channels

    closes = channel_closes(fleet)
    profile = fleet.admin.create_profile(
        "rooms", {"dm.heartbeat_s": REPORT_EVERY_S}, {"site_id": fleet.site_id}
    )
    version = f"rooms@{profile['version']}"
    started = time.monotonic()
    pushed = fleet.admin.push_profile(profile["profile_id"])
    wait_for(
        lambda: all(d.agent.configuration_version == version for d in fleet.devices),
        5,
        "every agent to apply the pushed profile",
    )

    def all_acked() -> bool:
        (acked,) = rows(
            region,
            "SELECT count(*) FROM device_commands WHERE kind = 'config' AND acked_at IS NOT NULL",
        )
        return int(acked[0]) == FLEET + EXTRA

    applied_s = time.monotonic() - started
    # the agents' acks, each through its own replica's group commit, all end up in the store
    wait_for(all_acked, 15, "every ack in the store", 0.2)
    print(f"push: {applied_s:.2f} s to all agents, {time.monotonic() - started:.2f} s to all acks")
    assert len(pushed["device_ids"]) == FLEET + EXTRA
    # the admin's request reached one replica: the others' devices got it on that one's commit
    assert pushed["delivered_now"] < FLEET + EXTRA
    assert channel_closes(fleet) == closes  # nobody waited for a reconnect

    # un-deploy devices one at a time until each replica has closed one: each within 1 s
    desks = fleet.of(DESK)
    closed_on: dict[str, float] = {}
    undeployed: list[VirtualDevice] = []
    for device in desks[:12]:
        before = connected(region)
        started = time.monotonic()
        fleet.admin.undeploy(str(device.agent.device_id))
        wait_for(lambda: not device.agent.channel_open, 1.0, "the channel to close")  # noqa: B023
        took = time.monotonic() - started
        undeployed.append(device)
        after = wait_for(
            lambda: one_less(region, before),  # noqa: B023
            2,
            "a replica to count one channel less",
        )
        (holder,) = [name for name in before if after[name] == before[name] - 1]
        closed_on.setdefault(holder, took)
        if len(closed_on) == REPLICAS:
            break
    print(f"un-deploy: channel closed after {closed_on} s ({len(undeployed)} un-deployed)")
    assert sorted(closed_on) == sorted(r.name for r in region.replicas), closed_on
    assert all(took < 1.0 for took in closed_on.values()), closed_on

    # power some devices off; a slowed database holds the alerts table across the evaluation
    silent = [d for d in desks if d not in undeployed][:6]
    online_ids = {
        str(d.agent.device_id) for d in fleet.devices if d not in silent and d not in undeployed
    }
    for device in silent:
        fleet.thread.call(device.shutdown(), timeout=10)
        fleet.off.append(device)
    powered_off = time.monotonic()
    time.sleep(max(0.0, powered_off + OFFLINE_AFTER_S - 6 - time.monotonic()))
    released = threading.Event()
    lock_held = threading.Event()

    def hold_the_alerts_table() -> None:
        engine = region.engine()
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("LOCK TABLE alerts IN EXCLUSIVE MODE"))
                lock_held.set()
                released.wait(30)
        finally:
            engine.dispose()

    holder_thread = threading.Thread(target=hold_the_alerts_table)
    holder_thread.start()
    try:
        assert lock_held.wait(10)
        # hold it until well after the devices crossed the offline threshold
        time.sleep(max(0.0, powered_off + OFFLINE_AFTER_S + 6 - time.monotonic()))
        assert not [a for a in fleet.admin.alerts("active") if a["rule"] == "offline"]
    finally:
        released.set()
        holder_thread.join()
    silent_ids = {str(d.agent.device_id) for d in silent}

    def all_alerted() -> list[dict[str, Any]] | None:
        active = [a for a in fleet.admin.alerts("active") if a["rule"] == "offline"]
        return active if {a["device_id"] for a in active} >= silent_ids else None

    wait_for(all_alerted, 20, "an offline alert for every powered-off device", 0.5)
    time.sleep(6)  # three more evaluations: none adds a second alert
    active = [a for a in fleet.admin.alerts("active") if a["rule"] == "offline"]
    assert sorted(a["device_id"] for a in active) == sorted(silent_ids)
    stored = rows(
        region, "SELECT device_id, count(*) FROM alerts WHERE rule = 'offline' GROUP BY device_id"
    )
    assert {r[0]: r[1] for r in stored} == dict.fromkeys(silent_ids, 1)
    assert not online_ids & {a["device_id"] for a in active}  # the online ones: none


# -- 2. the 300-device rollout and the planted bad signature --------------------------------------


def rollout_steps(region: BalancedRegion, rollout_id: str) -> list[tuple[str, str | None]]:
    """(action, wave) of the rollout's own operation-log lines, oldest first."""
    found = rows(
        region,
        "SELECT action, detail FROM operation_log WHERE target = :r ORDER BY id",
        r=rollout_id,
    )
    return [(action, json.loads(detail).get("wave")) for action, detail in found]


def busy_answers(region: BalancedRegion) -> list[tuple[Any, ...]]:
    return rows(
        region,
        "SELECT device_id, result FROM device_commands WHERE kind = 'firmware'"
        " AND result IS NOT NULL AND CAST(result AS text) LIKE :busy",
        busy=f'%"{BUSY}"%',
    )


def settled(admin: DmAdmin, rollout_id: str, state: str = "running") -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        status = admin.rollout(rollout_id)
        return status if status["state"] != state else None

    return check


def test_the_300_device_rollout_runs_each_wave_once_and_a_planted_signature_pauses_it(
    region: BalancedRegion, fleet: Fleet
) -> None:
    admin = fleet.admin
    bars = {str(d.agent.device_id): d for d in fleet.of(BAR)}
    assert len(bars) == FLEET
    image = admin.upload_image(BAR, GOOD, virtual_image(BAR, GOOD))
    first = admin.create_rollout(
        image["image_id"],
        waves=[{"percent": 10}, {"percent": 30}, {"percent": 100}],
        error_threshold={"percent": 5},
        alert_window_minutes=0,
        download_cap=50,
    )["rollout_id"]
    admin.control_rollout(first, "start")
    began = time.monotonic()
    done = wait_for(settled(admin, first), 240, "the rollout to finish", 1)
    print(f"rollout to {FLEET} devices in three waves: {time.monotonic() - began:.1f} s")
    assert done["state"] == "completed", done
    assert [w["size"] for w in done["waves"]] == [30, 90, 180]
    assert [w["updated"] for w in done["waves"]] == [30, 90, 180]
    steps = [s for s in rollout_steps(region, first) if s[0].startswith("rollout.wave_")]
    assert steps == [
        ("rollout.wave_start", "1"),
        ("rollout.wave_done", "1"),
        ("rollout.wave_start", "2"),
        ("rollout.wave_done", "2"),
        ("rollout.wave_start", "3"),
        ("rollout.wave_done", "3"),
    ]
    assert rollout_steps(region, first)[-1][0] == "rollout.complete"

    planted = admin.upload_image(BAR, PLANTED, virtual_image(BAR, PLANTED))
    plant_bad_signature(region.stack, planted["image_id"])
    second = admin.create_rollout(
        planted["image_id"],
        waves=[{"percent": 10}, {"percent": 100}],
        error_threshold={"percent": 20},
        alert_window_minutes=0,
    )["rollout_id"]
    admin.control_rollout(second, "start")

    def wave_one_reported() -> dict[str, Any] | None:
        status = admin.rollout(second)
        return status if status["waves"][0]["failed"] == 30 else None

    paused = wait_for(wave_one_reported, 90, "wave 1 to report", 0.5)
    time.sleep(1.5)  # more ticks on whichever replica leads: nothing else starts
    later = admin.rollout(second)
    admin.control_rollout(second, "abort")
    assert paused["state"] == later["state"] == "paused"
    assert paused["reason"] == "wave 1 reached its error threshold (6 of 30 failed)"
    assert later["waves"][1]["waiting"] == 270 and later["waves"][1]["in_progress"] == 0
    failures = rows(
        region,
        "SELECT target, detail FROM operation_log WHERE action = 'rollout.device_failed'",
    )
    refusals = [(t, json.loads(d)) for t, d in failures if json.loads(d)["rollout"] == second]
    assert len(refusals) == 30
    assert {d["reason"] for _t, d in refusals} == {firmware.BAD_SIGNATURE}
    assert [s for s in rollout_steps(region, second) if s[0] == "rollout.wave_start"] == [
        ("rollout.wave_start", "1")
    ]
    assert busy_answers(region) == []  # no device was asked for a second update at once
    for device in bars.values():
        fw = device.agent.firmware
        assert device.agent.firmware_version == GOOD
        assert fw.slots == [BAR_FACTORY, GOOD] and fw.active == 1
        assert all(r.get("reason") != BUSY for r in fw.reports.values())


# -- 3. SIGKILL of the leader during a rollout, under telemetry -----------------------------------


def test_sigkill_of_the_leader_mid_rollout_loses_no_acknowledged_reading(
    region: BalancedRegion, fleet: Fleet
) -> None:
    admin = fleet.admin
    online = fleet.live()
    assert all(d.agent.channel_open for d in online)
    bars = fleet.of(BAR)
    for device in online:
        device.agent.acknowledged_reports = []
    leader = wait_for(lambda: one_leader(region), 10, "one leader")
    image = admin.upload_image(BAR, THIRD, virtual_image(BAR, THIRD))
    rollout_id = admin.create_rollout(
        image["image_id"],
        waves=[{"percent": 30}, {"percent": 100}],
        alert_window_minutes=0,
        download_cap=60,
    )["rollout_id"]
    admin.control_rollout(rollout_id, "start")
    wait_for(
        lambda: admin.rollout(rollout_id)["totals"]["updated"] >= 20, 60, "updates under way", 0.2
    )
    killed = time.monotonic()
    os.kill(leader.pid, signal.SIGKILL)
    os.waitpid(leader.pid, 0)
    new_leader = wait_for(lambda: one_leader(region), 10, "another replica to lead", 0.1)
    lease_s = time.monotonic() - killed
    done = wait_for(settled(admin, rollout_id), 180, "the rollout to finish", 1)

    def dead_one_out() -> dict[str, str] | None:
        rotation = region.rotation()
        return rotation if rotation.get(leader.name, "").startswith("DOWN") else None

    rotation = wait_for(dead_one_out, 10, "HAProxy to take the dead replica out")
    wait_for(
        lambda: all(d.agent.channel_open for d in online), 60, "every channel to reconnect", 0.2
    )
    # the survivors hold every live device's channel once (a channel a rebooting device just left
    # may still be counted for a moment, until its replica reads the close)
    wait_for(
        lambda: sum(connected(region).values()) == len(online),
        15,
        "the survivors to hold exactly the live devices' channels",
        0.2,
    )
    time.sleep(REPORT_EVERY_S + 2)  # one more round of telemetry, on the survivors
    acknowledged = {
        str(d.agent.device_id): list(d.agent.acknowledged_reports or []) for d in online
    }
    for device in online:
        device.agent.acknowledged_reports = None
    time.sleep(3)  # answers in flight when the lists were taken are stored by now

    assert new_leader.name != leader.name and lease_s < 10, lease_s
    assert done["state"] == "completed", done
    assert [w["updated"] for w in done["waves"]] == [90, 210]
    starts = [s for s in rollout_steps(region, rollout_id) if s[0] == "rollout.wave_start"]
    assert starts == [("rollout.wave_start", "1"), ("rollout.wave_start", "2")]
    assert {d.agent.firmware_version for d in bars} == {THIRD}
    assert rotation[leader.name].startswith("DOWN")
    assert busy_answers(region) == []

    ids = [i for reports in acknowledged.values() for i in reports]
    print(
        f"leader {leader.name} killed: lease on {new_leader.name} after {lease_s:.2f} s; "
        f"{len(ids)} acknowledged readings from {len(online)} devices checked"
    )
    assert len(ids) >= len(online)  # every device had readings acknowledged in the window
    stored = rows(
        region,
        "SELECT device_id, report_id, count(*) FROM telemetry WHERE report_id IS NOT NULL"
        " GROUP BY device_id, report_id",
    )
    counts = {(r[0], r[1]): r[2] for r in stored}
    missing = [
        (d, i) for d, reports in acknowledged.items() for i in reports if (d, i) not in counts
    ]
    assert missing == []
    assert [k for k, n in counts.items() if n != 1] == []
    (without,) = rows(region, "SELECT count(*) FROM telemetry WHERE report_id IS NULL")
    assert without[0] == 0  # every reading carries its id: none escapes the count
