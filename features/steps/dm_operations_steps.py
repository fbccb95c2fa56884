"""Steps of features/dm_operations.feature (DM-05, DM-08, DM-13).

The bulk push goes to virtual room systems (the asyncio driver: their own certificates, their own
outbound command channels, the real device agent), running on an event loop of their own in a
background thread while the steps act as the administrator. The steps send no device-protocol
message there: each agent applies the profile and acknowledges its version by itself. The
telemetry-retention scenario runs a region of its own on a clock it moves, fed by a virtual device.
The first diagnostics scenario's room systems are such virtual devices too: each agent uploads its own
bundle by itself. The second's device is a hand-made client that uploads what it is told to, extra
fields included (a tampering device). The configuration acknowledgements, the uploaded bundles and
what the report shows of them are kept in the scenario's evidence (roomtrust.comply.shown).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
import websockets
from pytest_bdd import given, parsers, then, when

from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.fleet import DeviceSpec, FleetRun
from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import parse_scenario
from features.steps.dm_steps import _admin
from protocol.dm_channel import ChannelMessageType
from protocol.stack import Stack
from roomtrust.comply import shown
from roomtrust.comply.checks import common, dm_operations
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import evidence
from roomtrust.harness.fleets import devices as fleet_devices
from roomtrust.harness.fleets import fleet_scenario, start_fleet, wait_until
from roomtrust.harness.manual import ManualRegion, manual_dm_region
from roomtrust.harness.stores import region_engine
from services.dm.client import DeviceCredential

T = TypeVar("T")
FIXTURES = (evidence,)  # the scenario's evidence folder, for the steps that keep evidence
WAIT_S = 60.0
COMMANDS = sa.table(
    "device_commands",
    sa.column("device_id"),
    sa.column("kind"),
    sa.column("payload", sa.JSON),
    sa.column("result", sa.JSON),
)


class TwinFleet:
    """Virtual room systems on an event loop in a thread of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run: FleetRun | None = None

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def read(self, look: Callable[[], T]) -> T:
        """`look()` evaluated on the fleet's loop (the devices' state is the loop's)."""

        async def on_loop() -> T:
            return look()

        return self.call(on_loop())

    def start(self, stack: Stack, work_dir: Path, region: str, count: int) -> FleetRun:
        """`count` room systems, the catalogue's models in turn; not yet deployed or powered."""
        models = [list(CATALOGUE)[i % len(CATALOGUE)] for i in range(count)]
        scenario = parse_scenario(
            {
                "name": f"features-config-{secrets.token_hex(2)}",
                "seeds": [7],
                "timing": {"heartbeat_s": 600, "telemetry_s": 3600, "boot_scale": 0},
                "fleets": [
                    {
                        "name": "rooms",
                        "dm_region": region,
                        "sites": [{"name": "HQ", "time_zone": "UTC"}],
                        "models": {m: models.count(m) for m in dict.fromkeys(models)},
                    }
                ],
                "phases": [{"kind": "deploy"}, {"kind": "enroll"}],  # played by the steps
            }
        )
        self.run = FleetRun(scenario, stack, work_dir, keep_connections=True)
        self.call(self.run.start())
        return self.run

    @property
    def fleet(self) -> tuple[list[DeviceSpec], list[VirtualDevice]]:
        assert self.run is not None, "no room systems in this scenario"
        state = self.run.fleets["rooms"]
        return state.specs, state.devices

    def power_on(self, devices: list[VirtualDevice]) -> None:
        for device in devices:
            self.loop.call_soon_threadsafe(device.power_on)

    def commands(self, device: VirtualDevice) -> list[dict[str, Any]]:
        """The commands the room system received on its channel, as its driver logged them."""
        assert self.run is not None
        run = self.run
        records = self.read(lambda: list(run.records))
        return [
            {
                "type": r["type"],
                "command_id": r["command_id"],
                "kind": r["command"],
                "payload": {"version": r.get("version")},
            }
            for r in records
            if r["kind"] == ChannelMessageType.COMMAND and r["device"] == device.name
        ]

    def close(self) -> None:
        if self.run is not None:
            self.call(self.run.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def twin_fleet() -> Iterator[TwinFleet]:
    fleet = TwinFleet()
    yield fleet
    fleet.close()


def _poll(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _ws(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


async def _collect(
    device: DeviceCredential, url: str, ca: Path, wait: float
) -> list[dict[str, Any]]:
    """What the hand-made device receives on its command channel within `wait` seconds."""
    got: list[dict[str, Any]] = []
    async with websockets.connect(_ws(url), ssl=device.ssl_context(ca)) as ws:
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=wait)))
        except TimeoutError:
            pass
    return got


@when(parsers.parse('the device reports a "{component}" fault'))
def _fault(ctx: dict[str, Any], component: str) -> None:
    response = ctx["http"].post(
        "/v1/device/health", json={"component": component, "state": "fault"}
    )
    assert response.status_code == 200


@then(parsers.parse('an active "{severity}" alert for the device\'s "{component}" is listed'))
def _alert_listed(
    ctx: dict[str, Any], device: DeviceCredential, severity: str, component: str
) -> None:
    mine = [a for a in ctx["admin"].alerts("active") if a["device_id"] == device.device_id]
    dm_operations.active_alert(mine, severity, component)
    ctx["alert"] = mine[0]


@then("the administrator can acknowledge and then clear it")
def _ack_clear(ctx: dict[str, Any]) -> None:
    alert_id = ctx["alert"]["alert_id"]
    http = ctx["admin"].http
    acknowledged = http.post(f"/v1/alerts/{alert_id}/acknowledge").json().get("state")
    cleared = http.post(f"/v1/alerts/{alert_id}/clear").json().get("state")
    dm_operations.acknowledged_then_cleared(acknowledged, cleared)


@then("the operation log records both steps")
def _logged(ctx: dict[str, Any]) -> None:
    target = str(ctx["alert"]["alert_id"])
    actions = {e["action"] for e in ctx["admin"].oplog() if e["target"] == target}
    dm_operations.oplog_records(actions, {"alert.acknowledged", "alert.cleared"})


@given(
    parsers.parse(
        "{here:d} enrolled devices at the site and {there:d} enrolled device at another site"
    )
)
def _spread(
    stack: Stack,
    ctx: dict[str, Any],
    twin_fleet: TwinFleet,
    tmp_path: Path,
    here: int,
    there: int,
) -> None:
    """Room systems deployed by the scenario's administrator, then powered up: each enrolls with
    its own key and opens its own command channel."""
    twin_fleet.start(stack, tmp_path, ctx["region"], here + there)
    specs, devices = twin_fleet.fleet
    other = ctx["admin"].create_site(f"Other-{secrets.token_hex(2)}", "UTC")
    sites = [ctx["site"]] * here + [other] * there
    for spec, site in zip(specs, sites, strict=True):
        ctx["admin"].deploy(spec.mac, spec.serial_number, spec.model, site, name=spec.name)
    twin_fleet.power_on(devices)
    _poll(
        lambda: twin_fleet.read(lambda: all(d.agent.channel_open for d in devices)),
        f"{len(devices)} room systems to come online",
    )
    ctx["here"], ctx["there"] = devices[:here], devices[here:]


@when(parsers.parse('the administrator pushes a profile setting "{key}" to {value:d} to the site'))
def _push(ctx: dict[str, Any], key: str, value: int) -> None:
    profile = ctx["admin"].create_profile(
        f"p-{secrets.token_hex(2)}", {key: value}, {"site_id": ctx["site"]}
    )
    ctx["pushed"] = ctx["admin"].push_profile(profile["profile_id"])
    ctx["profile_id"] = profile["profile_id"]
    ctx["version"] = f"{profile['name']}@{profile['version']}"


@then("every device at the site receives the profile and acknowledges its version")
def _received(stack: Stack, ctx: dict[str, Any], twin_fleet: TwinFleet, evidence: Evidence) -> None:
    here: list[VirtualDevice] = ctx["here"]
    version = ctx["version"]
    # each agent acknowledges the version when it has applied it
    _poll(
        lambda: (
            twin_fleet.read(lambda: all(d.agent.configuration_version == version for d in here))
            or None
        ),
        "every room system at the site to apply the profile",
        timeout=30,
    )
    received = {str(d.agent.device_id): twin_fleet.commands(d) for d in here}
    dm_operations.profile_delivered(
        [str(i) for i in ctx["pushed"]["device_ids"]], list(received), received, version
    )
    # what the region recorded of each device's own acknowledgement (committed a moment later)
    deadline = time.monotonic() + 20
    acks = _acks(stack, ctx["region"], list(received), version)
    while None in acks.values() and time.monotonic() < deadline:
        time.sleep(0.3)
        acks = _acks(stack, ctx["region"], list(received), version)
    status = ctx["admin"].push_status(ctx["profile_id"])
    evidence.write_json("config-acknowledgements.json", {"acks": acks, "push_status": status})
    evidence.show(
        shown.CONFIG_ACKS,
        {
            "version": version,
            "devices": len(acks),
            "applied": sum(1 for r in acks.values() if r and r.get("applied") is True),
            "service push status": {
                k: status[k] for k in ("devices", "acknowledged", "applied", "refused")
            },
            "acknowledgements": acks,
        },
    )
    dm_operations.profile_acknowledged(acks, version)


def _acks(
    stack: Stack, region: str, device_ids: list[str], version: str
) -> dict[str, dict[str, Any] | None]:
    """Each device -> the result of its acknowledgement of the profile's command, as the region
    stored it (None while there is none)."""
    engine = region_engine(stack, "dm", region)
    query = sa.select(COMMANDS.c.device_id, COMMANDS.c.payload, COMMANDS.c.result).where(
        COMMANDS.c.kind == "config", COMMANDS.c.device_id.in_(device_ids)
    )
    try:
        with engine.connect() as conn:
            rows = list(conn.execute(query))
    finally:
        engine.dispose()
    acks: dict[str, dict[str, Any] | None] = dict.fromkeys(device_ids)
    for device_id, payload, result in rows:
        if isinstance(payload, dict) and payload.get("version") == version:
            acks[device_id] = result
    return acks


@then("the device at the other site receives nothing")
def _nothing(ctx: dict[str, Any], twin_fleet: TwinFleet) -> None:
    time.sleep(1.0)  # what the push sent has long arrived at the site's room systems
    received = {str(d.agent.device_id): twin_fleet.commands(d) for d in ctx["there"]}
    dm_operations.nothing_delivered(received)


@then("no device of the site drifts from the profile")
def _no_drift(ctx: dict[str, Any], twin_fleet: TwinFleet) -> None:
    ids = {str(d.agent.device_id) for d in ctx["here"]}

    def observed() -> tuple[list[dict[str, Any]], set[str]]:
        drift = ctx["admin"].http.get("/v1/config/drift").json()
        listed = {
            d["device_id"]
            for d in ctx["admin"].devices()
            if d["device_id"] in ids and d["configuration_version"] == ctx["version"]
        }
        return drift, listed

    # the acknowledgements are committed a moment after they are sent: look until they are in
    deadline = time.monotonic() + 20
    drift, listed = observed()
    while listed != ids and time.monotonic() < deadline:
        time.sleep(0.3)
        drift, listed = observed()
    dm_operations.no_drift(drift, ids, listed)


@when("the administrator requests diagnostics from every device at the site")
def _request_diag_all(ctx: dict[str, Any], twin_fleet: TwinFleet) -> None:
    ids = twin_fleet.read(lambda: [str(d.agent.device_id) for d in ctx["here"]])
    ctx["diagnostics"] = {
        device_id: ctx["admin"].request_diagnostics(device_id)["command_id"] for device_id in ids
    }


@then("each device at the site uploads a bundle of its own log, which the administrator downloads")
def _bundles_uploaded(ctx: dict[str, Any], evidence: Evidence) -> None:
    requested: dict[str, int] = ctx["diagnostics"]

    def listed() -> dict[str, str] | None:
        rows = ctx["admin"].http.get("/v1/diagnostics").json()
        found = {r["device_id"]: r["bundle_id"] for r in rows if r["device_id"] in requested}
        return found if len(found) == len(requested) else None

    deadline = time.monotonic() + 30
    found = listed()
    while found is None and time.monotonic() < deadline:
        time.sleep(0.3)
        found = listed()
    ids = found or {}
    bundles: dict[str, dict[str, Any] | None] = dict.fromkeys(requested)
    for device_id, bundle_id in ids.items():
        bundles[device_id] = json.loads(ctx["admin"].fetch_diagnostics(bundle_id))
    evidence.write_json("diagnostics-bundles.json", {"bundle_ids": ids, "bundles": bundles})
    evidence.show(
        shown.DIAGNOSTICS_BUNDLES,
        {
            "asked": len(requested),
            "uploaded": sum(1 for b in bundles.values() if b),
            "bundles": {
                device_id: {
                    "bundle_id": ids.get(device_id),
                    "fields": sorted(bundle) if bundle else None,
                    "log_lines": sum(str(t).count("\n") for t in bundle["logs"].values())
                    if bundle
                    else 0,
                }
                for device_id, bundle in bundles.items()
            },
        },
    )
    dm_operations.bundles_uploaded_by_agents(requested, bundles)


@when(parsers.parse('the administrator creates a profile with the key "{key}"'))
def _bad_profile(ctx: dict[str, Any], key: str) -> None:
    ctx["response"] = ctx["admin"].http.post(
        "/v1/config/profiles", json={"name": "x", "values": {key: "v"}, "target": {"tag": "t"}}
    )


@when("the administrator requests diagnostics from the device")
def _request_diag(stack: Stack, ctx: dict[str, Any], device: DeviceCredential) -> None:
    endpoint = stack.endpoint("dm", ctx["region"])
    url, ca = endpoint.url, endpoint.ca_file
    ctx["command"] = ctx["admin"].request_diagnostics(str(device.device_id))
    received = asyncio.run(_collect(device, url, ca, 1.0))
    assert [m["kind"] for m in received] == ["diagnostics"]


def _bundle(ctx: dict[str, Any], device: DeviceCredential) -> dict[str, Any]:
    return {
        "command_id": ctx["command"]["command_id"],
        "device_id": device.device_id,
        "mac": device.mac,
        "ip_address": "192.0.2.10",
        "logs": {"system.log": "camera ok"},
    }


@when(parsers.parse('the device uploads logs with an extra field "{field}"'))
def _upload_extra(ctx: dict[str, Any], device: DeviceCredential, field: str) -> None:
    ctx["response"] = ctx["http"].post(
        "/v1/device/diagnostics", json={**_bundle(ctx, device), field: "data"}
    )


@when("the device uploads only its ID, MAC, IP address and logs")
def _upload(ctx: dict[str, Any], device: DeviceCredential) -> None:
    response = ctx["http"].post("/v1/device/diagnostics", json=_bundle(ctx, device))
    assert response.status_code == 201, response.text
    ctx["bundle_id"] = response.json()["bundle_id"]


@then("the administrator can download the bundle")
def _download(ctx: dict[str, Any]) -> None:
    bundle = json.loads(ctx["admin"].fetch_diagnostics(ctx["bundle_id"]))
    dm_operations.diagnosis_fields_only(bundle)


@then("an administrator of another enterprise cannot")
def _other_cannot(stack: Stack, ctx: dict[str, Any]) -> None:
    other = _admin(stack, ctx["region"])
    try:
        status = other.http.get(f"/v1/diagnostics/{ctx['bundle_id']}").status_code
        common.status_is(status, 404, "another enterprise fetching the bundle")
    finally:
        other.close()


# -- telemetry retention: a region of its own on a clock the scenario moves ------------------------


@pytest.fixture
def retention_region(tmp_path: Path) -> Iterator[ManualRegion]:
    with manual_dm_region(tmp_path / "retention", dm_telemetry_retention_days=180) as region:
        yield region


@given("a DM region on a clock the test moves, keeping telemetry 180 days")
def _retention_region(ctx: dict[str, Any], retention_region: ManualRegion) -> None:
    ctx["retention_days"] = retention_region.runtime.settings.dm_telemetry_retention_days
    ctx["sent_at"] = retention_region.clock.now()


@given("a virtual device that has sent telemetry to it")
def _telemetry_sent(ctx: dict[str, Any], retention_region: ManualRegion, tmp_path: Path) -> None:
    """A virtual room system (the real agent) enrolls and sends its telemetry, then is switched
    off: the readings age on the region's clock."""

    async def send() -> str:
        scenario = fleet_scenario("telemetry retention", {"MeetingBar A20": 1})
        run = await start_fleet(retention_region.stack(), tmp_path / "fleet", scenario)
        try:
            (device,) = fleet_devices(run)
            device_id = str(device.agent.device_id)
            await wait_until(
                lambda: retention_region.telemetry_count(device_id) or None,
                WAIT_S,
                "the device's telemetry to be stored",
            )
            return device_id
        finally:
            await run.close()

    ctx["device_id"] = asyncio.run(send())
    ctx["stored"] = retention_region.telemetry_count(ctx["device_id"])


@when(parsers.parse("the region's retention job has run {days:d} days later"))
def _retention_later(ctx: dict[str, Any], retention_region: ManualRegion, days: int) -> None:
    retention_region.clock.set(ctx["sent_at"] + dt.timedelta(days=days, minutes=1))
    retention_region.wait_for_sweeps()
    ctx["age_days"] = days


@then("the device's telemetry is still stored")
def _telemetry_kept(ctx: dict[str, Any], retention_region: ManualRegion) -> None:
    now = retention_region.telemetry_count(ctx["device_id"])
    dm_operations.telemetry_kept(ctx["stored"], now, ctx["age_days"], ctx["retention_days"])


@then("the device's telemetry is gone")
def _telemetry_gone(ctx: dict[str, Any], retention_region: ManualRegion) -> None:
    count = partial(retention_region.telemetry_count, ctx["device_id"])
    deadline = time.monotonic() + 10  # a sweep may be under way
    while count() and time.monotonic() < deadline:
        time.sleep(0.2)
    dm_operations.telemetry_purged(ctx["stored"], count(), ctx["age_days"], ctx["retention_days"])
