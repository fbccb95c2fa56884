"""Run a scenario with real virtual devices against the running local stack.

`FleetRun` plans the devices of every fleet from the scenario's seed, creates an enterprise and sites
through the DM admin API, deploys the devices (not the ones marked undeployed), then plays the
phases: power-up and enrollment, steady telemetry, meetings through the lobby and moderation paths,
injected faults and the DM switch. Every event goes to a JSON-lines log; `summary()` condenses it,
with the wire checks of DM-02, DM-03 and DM-12 taken from the connection recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from devices_virtual.agent import (
    AgentConfig,
    Backoff,
    CallStateChanged,
    DeviceAgent,
    DeviceIdentity,
    DmToggled,
    FaultCleared,
    FaultInjected,
    NetworkInfo,
    Phase,
)
from devices_virtual.agent.domains import BOOT_HOSTS
from devices_virtual.driver.device import VirtualDevice
from devices_virtual.driver.io import FleetIO, Log
from devices_virtual.driver.keys import DeviceKeys
from devices_virtual.driver.meeting import VirtualMeetingClient
from devices_virtual.driver.recorder import Recorder
from devices_virtual.driver.standins import Standins
from devices_virtual.meeting_client import (
    CreateConference,
    JoinConference,
    LeaveConference,
    MeetingClient,
    Moderate,
    PasswordLogin,
    RoomSystemRegistration,
    SendChat,
    Start,
    State,
)
from devices_virtual.models import get_model
from devices_virtual.scenario import (
    DeployPhase,
    EnrollPhase,
    Fleet,
    InjectFaultsPhase,
    MeetingsPhase,
    Scenario,
    SteadyPhase,
    ToggleDmPhase,
)
from protocol.stack import Stack
from protocol.tls import client_context

PASSWORD = "fleet password 2026"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    fleet: str
    model: str
    mac: str
    serial_number: str
    name: str
    site: int
    deployed: bool
    dm_enabled: bool


def plan_fleet(fleet: Fleet, rng: random.Random) -> list[DeviceSpec]:
    """The devices of a fleet, the same for the same seed: models in the order given, spread over
    the sites in turn; then the undeployed extras; the first `dm_disabled` ones have DM off."""
    models = [name for name, count in fleet.models.items() for _ in range(count)]
    extras = [models[i % len(models)] for i in range(fleet.undeployed)]
    specs: list[DeviceSpec] = []
    for index, model in enumerate(models + extras):
        deployed = index < len(models)
        mac = "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))
        specs.append(
            DeviceSpec(
                fleet=fleet.name,
                model=model,
                mac=mac,
                serial_number=f"SN{rng.randrange(16**8):08X}",
                name=f"{fleet.name} {model} {index + 1}",
                site=index % len(fleet.sites),
                deployed=deployed,
                dm_enabled=not (deployed and index < fleet.dm_disabled),
            )
        )
    return specs


class DmAdminAsync:
    """The few DM admin calls a fleet needs, asynchronously (deploying thousands of devices)."""

    def __init__(self, url: str, ca_file: Path) -> None:
        self.http = httpx.AsyncClient(base_url=url, verify=client_context(ca_file), timeout=30)

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"DM {method} {path}: {response.status_code} {response.text}")
        return response.json()

    async def setup(self, name: str) -> None:
        email = f"fleet-{secrets.token_hex(4)}@example.com"
        admin = {"email": email, "password": PASSWORD, "first_name": "Fleet", "last_name": "Admin"}
        await self._call("POST", "/v1/enterprises", {"name": name, "admin": admin})
        login = await self._call("POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        self.http.headers["authorization"] = f"Bearer {login['token']}"

    async def create_site(self, name: str, time_zone: str, **extra: Any) -> str:
        body = {"name": name, "time_zone": time_zone, **{k: v for k, v in extra.items() if v}}
        return str((await self._call("POST", "/v1/sites", body))["site_id"])

    async def deploy(self, spec: DeviceSpec, site_id: str) -> str:
        body = {
            "mac": spec.mac,
            "serial_number": spec.serial_number,
            "model": spec.model,
            "site_id": site_id,
            "name": spec.name,
        }
        return str((await self._call("POST", "/v1/devices", body))["device_id"])

    async def devices(self) -> list[dict[str, Any]]:
        response = await self.http.get("/v1/devices")
        result: list[dict[str, Any]] = response.json()
        return result

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class FleetState:
    fleet: Fleet
    specs: list[DeviceSpec]
    devices: list[VirtualDevice]
    dm_url: str
    dm_ca: Path
    admin: DmAdminAsync
    site_ids: list[str] = field(default_factory=list)
    users: list[VirtualMeetingClient] = field(default_factory=list)
    rooms: dict[str, VirtualMeetingClient] = field(default_factory=dict)
    meeting_admin: Any = None


class FleetRun:
    def __init__(
        self,
        scenario: Scenario,
        stack: Stack,
        work_dir: Path,
        log: Log | None = None,
        progress: Progress | None = None,
        keep_connections: bool = True,
        run_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scenario = scenario
        self.clock = clock  # the time the stand-in time servers tell the devices
        # MACs and serials must be new on every run (the DM service keeps them unique), so they
        # come from the run id; everything the scenario decides comes from its seed.
        self.run_id = run_id or secrets.token_hex(6)
        self.identity_rng = random.Random(f"{scenario.seed}:{self.run_id}")
        self.stack = stack
        self.work_dir = work_dir
        self.rng = random.Random(scenario.seed)
        self.records: list[dict[str, Any]] = []
        self._log_out = log
        self.progress: Progress = progress or (lambda _d, _n, _t: None)
        self.recorder = Recorder(keep=keep_connections)
        self.fleets: dict[str, FleetState] = {}
        self.meetings: list[dict[str, Any]] = []
        self.toggles: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.standins: Standins | None = None
        self.io: FleetIO | None = None
        self._meeting_tasks: set[asyncio.Task[None]] = set()
        self._release_keys: dict[str, str | None] = {}

    # -- logging ----------------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        if self.io is not None:
            record = {"at": round(self.io.now(), 3), **record}
        self.records.append(record)
        if self._log_out is not None:
            self._log_out(record)

    def scaled(self, seconds: float) -> float:
        return seconds / self.scenario.timing.speed

    # -- set-up and tear-down -----------------------------------------------------------------------

    async def start(self) -> None:
        self.standins = await Standins(self.clock).start()
        self.io = FleetIO(self.standins, self.recorder, self.log)
        for fleet in self.scenario.fleets:
            self.fleets[fleet.name] = self._make_fleet(fleet)

    def release_key(self, dm_url: str, dm_ca: Path) -> str | None:
        """The region's firmware release public key, built into every device made for it (the
        factory's step); None when the region publishes none (then every image is refused)."""
        if dm_url not in self._release_keys:
            try:
                with httpx.Client(verify=client_context(dm_ca), timeout=10) as http:
                    response = http.get(f"{dm_url}/v1/firmware/release-key")
                key = response.json()["public_key_pem"] if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError):
                key = None
            self._release_keys[dm_url] = key
        return self._release_keys[dm_url]

    def _make_fleet(self, fleet: Fleet) -> FleetState:
        assert self.io is not None
        dm = self.stack.endpoint("dm", fleet.dm_region)
        dm_url, dm_ca = dm.url, dm.ca_file
        release_key = self.release_key(dm_url, dm_ca)
        timing = self.scenario.timing
        specs = plan_fleet(fleet, self.identity_rng)
        keys_dir = self.work_dir / "keys" / fleet.name
        devices: list[VirtualDevice] = []
        for spec in specs:
            model = get_model(spec.model)
            keys = DeviceKeys(keys_dir, spec.mac.replace(":", ""))
            site = fleet.sites[spec.site]
            identity = DeviceIdentity(
                spec.mac,
                spec.serial_number,
                model,
                spec.name,
                keys.csr_pem(spec.mac, spec.serial_number),
                site.time_zone,
            )
            config = AgentConfig(
                dm_url=dm_url,
                dm_enabled=spec.dm_enabled,
                heartbeat_s=timing.heartbeat_s,
                telemetry_s=timing.telemetry_s,
                ntp_interval_s=timing.ntp_interval_s,
                boot_seconds=model.boot_seconds * timing.boot_scale,
                network=NetworkInfo(
                    fleet.network_type,
                    f"10.{len(self.fleets)}.{len(devices) // 250}.{len(devices) % 250 + 1}",
                    None,
                    f"{fleet.name}-lan",
                ),
                release_key_pem=release_key,
                enroll_backoff=Backoff(initial=timing.enroll_retry_s),
            )
            agent = DeviceAgent(identity, config)
            devices.append(VirtualDevice(self.io, agent, keys, dm_ca, fleet.name))
        admin = DmAdminAsync(dm_url, dm_ca)
        return FleetState(fleet, specs, devices, dm_url, dm_ca, admin)

    async def close(self) -> None:
        for task in list(self._meeting_tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._meeting_tasks, return_exceptions=True)
        for state in self.fleets.values():
            for client in [*state.users, *state.rooms.values()]:
                await client.shutdown()
            await asyncio.gather(*(d.shutdown() for d in state.devices))
            await state.admin.aclose()
            if state.meeting_admin is not None:
                await asyncio.to_thread(state.meeting_admin.close)
        if self.io is not None:
            await self.io.aclose()
        if self.standins is not None:
            await self.standins.stop()

    async def run(self) -> dict[str, Any]:
        await self.start()
        try:
            for index, phase in enumerate(self.scenario.phases):
                self.log({"kind": "phase", "index": index, "phase": phase.kind})
                await self.run_phase(phase)
            return await self.summary()
        finally:
            await self.close()

    async def run_phase(self, phase: Any) -> None:
        match phase:
            case DeployPhase():
                await self.deploy(phase)
            case EnrollPhase():
                await self.enroll(phase)
            case SteadyPhase():
                await self._sleep_with_progress("steady telemetry", self.scaled(phase.duration_s))
            case MeetingsPhase():
                await self.run_meetings(phase)
            case ToggleDmPhase():
                await self.toggle_dm(phase)
            case InjectFaultsPhase():
                self.inject_faults(phase)

    async def _sleep_with_progress(self, label: str, seconds: float) -> None:
        steps = max(1, int(seconds))
        for step in range(steps):
            self.progress(label, step, steps)
            await asyncio.sleep(seconds / steps)
        self.progress(label, steps, steps)

    # -- phases ----------------------------------------------------------------------------------

    async def deploy(self, phase: DeployPhase) -> None:
        for fleet in self.scenario.fleets_of(phase):
            await self._deploy_fleet(self.fleets[fleet.name])

    async def _deploy_fleet(self, state: FleetState) -> None:
        fleet = state.fleet
        await state.admin.setup(f"{self.scenario.name} {fleet.name}")
        for site in fleet.sites:
            state.site_ids.append(
                await state.admin.create_site(
                    site.name, site.time_zone, latitude=site.latitude, longitude=site.longitude
                )
            )
        wanted = [s for s in state.specs if s.deployed]
        limit = asyncio.Semaphore(8)
        done = 0

        async def deploy_one(spec: DeviceSpec) -> None:
            nonlocal done
            async with limit:
                device_id = await state.admin.deploy(spec, state.site_ids[spec.site])
            done += 1
            self.progress(f"deploy {fleet.name}", done, len(wanted))
            self.log({"kind": "deployed", "device": spec.mac, "device_id": device_id})

        await asyncio.gather(*(deploy_one(s) for s in wanted))

    async def enroll(self, phase: EnrollPhase) -> None:
        assert self.io is not None
        devices = [d for f in self.scenario.fleets_of(phase) for d in self.fleets[f.name].devices]
        spread = self.scaled(phase.within_s)
        for device in devices:
            self.io.loop.call_later(self.rng.uniform(0, spread), device.power_on)
        expected = [
            d
            for f in self.scenario.fleets_of(phase)
            for s, d in zip(self.fleets[f.name].specs, self.fleets[f.name].devices, strict=True)
            if s.deployed and s.dm_enabled
        ]
        deadline = self.io.now() + spread + phase.timeout_s
        while self.io.now() < deadline:
            online = sum(d.agent.phase is Phase.ONLINE for d in expected)
            self.progress("power-up and enrollment", online, len(expected))
            if online == len(expected):
                break
            await asyncio.sleep(0.2)
        online = sum(d.agent.phase is Phase.ONLINE for d in expected)
        self.log({"kind": "enroll_phase", "expected": len(expected), "online": online})

    def _online(self, phase: Any, component: str | None = None) -> list[VirtualDevice]:
        return [
            d
            for f in self.scenario.fleets_of(phase)
            for d in self.fleets[f.name].devices
            if d.agent.phase is Phase.ONLINE
            and (component is None or component in d.agent.identity.model.components)
        ]

    async def toggle_dm(self, phase: ToggleDmPhase) -> None:
        assert self.io is not None
        if phase.enabled:
            pool = [
                d
                for f in self.scenario.fleets_of(phase)
                for d in self.fleets[f.name].devices
                if not d.agent.dm_enabled
            ]
        else:
            pool = self._online(phase)
        chosen = self.rng.sample(pool, max(1, round(len(pool) * phase.share))) if pool else []
        at = self.io.now()
        for device in chosen:
            device.feed(DmToggled(self.io.now(), phase.enabled))
        # the DM session is closed asynchronously; let the closing finish before observing
        await asyncio.sleep(0.5)
        await self._sleep_with_progress(
            f"DM switched {'on' if phase.enabled else 'off'}", self.scaled(phase.duration_s)
        )
        macs = [d.name for d in chosen]
        after = self.recorder.to_dm(macs, since=at + 0.5)
        record = {
            "kind": "toggle_dm",
            "enabled": phase.enabled,
            "devices": len(chosen),
            "at": round(at, 3),
            "dm_connections_after": len(after),
            "device_macs": macs,
        }
        self.toggles.append(record)
        self.log(record)

    def inject_faults(self, phase: InjectFaultsPhase) -> None:
        assert self.io is not None
        pool = self._online(phase, phase.component)
        chosen = self.rng.sample(pool, max(1, round(len(pool) * phase.share))) if pool else []
        for device in chosen:
            device.feed(FaultInjected(self.io.now(), phase.component, phase.detail))
            if phase.clear_after_s is not None:
                self.io.loop.call_later(
                    self.scaled(phase.clear_after_s), self._clear_fault, device, phase.component
                )
        record = {"kind": "faults", "component": phase.component, "devices": len(chosen)}
        self.faults.append(record)
        self.log(record)

    def _clear_fault(self, device: VirtualDevice, component: str) -> None:
        device.feed(FaultCleared(device.io.now(), component))

    # -- meetings --------------------------------------------------------------------------------

    async def _meeting_side(self, state: FleetState) -> None:
        """An enterprise in the fleet's meeting region with its users (once per fleet)."""
        if state.meeting_admin is not None:
            return
        from protocol.meeting_client import MeetingApi

        assert self.io is not None and state.fleet.meeting_region is not None
        region = self.stack.endpoint("meeting", state.fleet.meeting_region)
        url, ca = region.url, region.ca_file
        admin = MeetingApi(url, ca)
        await asyncio.to_thread(
            admin.register_enterprise, f"{self.scenario.name} {state.fleet.name}"
        )
        state.meeting_admin = admin
        for index in range(state.fleet.users):
            name = f"User {index + 1}"
            account = await asyncio.to_thread(admin.create_account, name, "user", None, PASSWORD)
            client = MeetingClient(url, PasswordLogin(account["username"], PASSWORD))
            virtual = VirtualMeetingClient(self.io, client, f"{state.fleet.name}/{name}", ca)
            virtual.feed(Start(self.io.now()))
            state.users.append(virtual)

    async def _room(self, state: FleetState, device: VirtualDevice) -> VirtualMeetingClient:
        """The meeting client of a room device, registered as a room system on first use."""
        assert self.io is not None and state.fleet.meeting_region is not None
        if device.name in state.rooms:
            return state.rooms[device.name]
        region = self.stack.endpoint("meeting", state.fleet.meeting_region)
        url, ca = region.url, region.ca_file
        display = device.agent.identity.name
        code = await asyncio.to_thread(
            state.meeting_admin.call, "POST", "/v1/room-systems", json={"display_name": display}
        )
        keys = DeviceKeys(device.keys.directory, device.keys.stem + "-meeting")
        csr = keys.csr_pem(device.name + "-room", device.agent.identity.serial_number)
        client = MeetingClient(url, RoomSystemRegistration(code["registration_code"], csr))
        virtual = VirtualMeetingClient(self.io, client, f"room/{device.name}", ca, keys)
        virtual.feed(Start(self.io.now()))
        state.rooms[device.name] = virtual
        return virtual

    async def run_meetings(self, phase: MeetingsPhase) -> None:
        assert self.io is not None
        fleets = [self.fleets[f.name] for f in self.scenario.fleets_of(phase)]
        for state in fleets:
            await self._meeting_side(state)
        busy: set[str] = set()
        duration = self.scaled(phase.duration_s)
        rate = phase.arrivals_per_min / 60.0 * self.scenario.timing.speed  # per real second
        end = self.io.now() + duration
        arrivals = 0
        while True:
            wait = self.rng.expovariate(rate)
            if self.io.now() + wait > end:
                break
            await asyncio.sleep(wait)
            arrivals += 1
            self.progress("meetings", min(arrivals, 10**6), max(arrivals, 1))
            state = self.rng.choice(fleets)
            task = self.io.loop.create_task(self._one_meeting(state, phase, busy, arrivals))
            self._meeting_tasks.add(task)
            task.add_done_callback(self._meeting_tasks.discard)
        remaining = end - self.io.now()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if self._meeting_tasks:
            await asyncio.gather(*list(self._meeting_tasks), return_exceptions=True)
        self.progress("meetings", arrivals, max(arrivals, 1))

    async def _one_meeting(
        self, state: FleetState, phase: MeetingsPhase, busy: set[str], number: int
    ) -> None:
        assert self.io is not None
        io = self.io
        ready = [u for u in state.users if u.client.state is State.READY and u.name not in busy]
        rooms = [d for d in state.devices if d.agent.enrolled and d.name not in busy]
        record: dict[str, Any] = {"kind": "meeting", "fleet": state.fleet.name, "number": number}
        if len(ready) < 1 + phase.participants or not rooms:
            record["skipped"] = "not enough idle users or rooms"
            self.meetings.append(record)
            self.log(record)
            return
        owner, *guests = self.rng.sample(ready, 1 + phase.participants)
        device = self.rng.choice(rooms)
        members = [owner.name, *(g.name for g in guests), device.name]
        busy.update(members)
        try:
            await self._meeting_script(state, phase, owner, guests, device, record)
        except Exception as exc:  # a meeting that went wrong is a result, not a crash
            record["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            busy.difference_update(members)
            self.meetings.append(record)
            self.log(record)
            if device.agent.in_call:
                device.feed(CallStateChanged(io.now(), False))

    async def _meeting_script(
        self,
        state: FleetState,
        phase: MeetingsPhase,
        owner: VirtualMeetingClient,
        guests: list[VirtualMeetingClient],
        device: VirtualDevice,
        record: dict[str, Any],
    ) -> None:
        assert self.io is not None
        io = self.io
        locked = self.rng.random() < phase.locked_share
        password = (
            f"pw-{self.rng.randrange(10**6):06d}"
            if self.rng.random() < phase.password_share
            else None
        )
        recording = self.rng.random() < phase.recording_share
        record.update(locked=locked, password=password is not None, recording=recording)
        room = await self._room(state, device)
        if not await room.until(lambda c: c.state is State.READY):
            raise RuntimeError(f"room system not ready: {room.client.last_error}")

        def inside(c: MeetingClient) -> bool:
            return c.state is State.IN_CONFERENCE

        owner.client.auto_admit = True
        owner.feed(
            CreateConference(
                io.now(), f"Meeting {record['number']}", password=password, locked=locked
            )
        )
        if not await owner.until(inside):
            raise RuntimeError(f"owner could not open the conference: {owner.client.last_error}")
        conference_id = owner.client.conference_id
        record["conference_id"] = conference_id
        assert conference_id is not None
        lobby = 0
        for joiner in [room, *guests]:
            shown_before = len(joiner.shown)
            joiner.feed(JoinConference(io.now(), conference_id, password))
            if not await joiner.until(inside):
                raise RuntimeError(f"{joiner.name} was not admitted: {joiner.client.last_error}")
            lobby += any(s.kind == "lobby" for s in joiner.shown[shown_before:])
        record["lobby_waits"] = lobby
        record["joined"] = 1 + 1 + len(guests)
        device.feed(CallStateChanged(io.now(), True))
        if phase.chat:
            owner.feed(SendChat(io.now(), "Welcome, agenda in the invite"))
            delivered = await room.until(lambda c: len(c.chat) > 0, 10)
            record["chat_delivered"] = delivered
        if recording:
            owner.feed(Moderate(io.now(), "record_start"))
            record["recording_notice"] = await room.until(lambda c: c.recording, 10)
        if phase.moderation:
            target = room.client.participant_id
            owner.feed(Moderate(io.now(), "mute", target))
            record["room_muted"] = await room.until(lambda c: not c.audio, 10)
            if guests:
                removed = guests[-1]
                owner.feed(Moderate(io.now(), "remove", removed.client.participant_id))
                record["guest_removed"] = await removed.until(lambda c: c.outcome == "removed", 10)
        await asyncio.sleep(
            min(
                self.rng.expovariate(1 / self.scaled(phase.meeting_s)),
                3 * self.scaled(phase.meeting_s),
            )
        )
        if recording:
            owner.feed(Moderate(io.now(), "record_stop"))
        if guests[:1] and guests[0].client.state is State.IN_CONFERENCE:
            guests[0].feed(LeaveConference(io.now()))
        owner.feed(Moderate(io.now(), "end"))
        record["ended_for_room"] = await room.until(lambda c: c.outcome == "ended", 10)
        for client in [owner, room, *guests]:
            await client.until(lambda c: c.state is State.READY, 10)
        record["completed"] = True

    # -- results ---------------------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        fleets: dict[str, Any] = {}
        for name, state in self.fleets.items():
            fleets[name] = await self._fleet_summary(state)
        meetings = [m for m in self.meetings if "skipped" not in m]
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "fleets": fleets,
            "connections_recorded": self.recorder.count,
            "meetings": {
                "arrived": len(self.meetings),
                "held": len(meetings),
                "completed": sum(bool(m.get("completed")) for m in meetings),
                "failed": [m for m in meetings if "error" in m],
                "locked": sum(bool(m.get("locked")) for m in meetings),
                "lobby_waits": sum(int(m.get("lobby_waits", 0)) for m in meetings),
                "rooms_muted": sum(bool(m.get("room_muted")) for m in meetings),
                "guests_removed": sum(bool(m.get("guest_removed")) for m in meetings),
                "recording_notices": sum(bool(m.get("recording_notice")) for m in meetings),
                "chats_delivered": sum(bool(m.get("chat_delivered")) for m in meetings),
            },
            "dm_toggles": self.toggles,
            "faults": self.faults,
        }

    async def _fleet_summary(self, state: FleetState) -> dict[str, Any]:
        dm_host = urlsplit(state.dm_url).hostname or ""
        dm_port = urlsplit(state.dm_url).port
        undeployed = [d for s, d in zip(state.specs, state.devices, strict=True) if not s.deployed]
        deployed = [d for s, d in zip(state.specs, state.devices, strict=True) if s.deployed]
        undeployed_macs = {d.name for d in undeployed}
        boot_hosts, unexpected = self.boot_contacts(state.devices, dm_host)
        listed = (
            await state.admin.devices() if state.admin.http.headers.get("authorization") else []
        )

        def total(devices: list[VirtualDevice], key: str) -> int:
            return sum(d.stats[key] for d in devices)

        return {
            "dm_region": state.fleet.dm_region,
            "dm_server": f"{dm_host}:{dm_port}",
            "devices": len(state.devices),
            "deployed": len(deployed),
            "undeployed": len(undeployed),
            "models": sorted({d.agent.identity.model.name for d in state.devices}),
            "enrolled": sum(d.agent.enrolled for d in deployed),
            "enrolled_models": sorted(
                {d.agent.identity.model.name for d in deployed if d.agent.enrolled}
            ),
            "online": sum(d.agent.phase is Phase.ONLINE for d in state.devices),
            "dm_off_at_boot": sum(not s.dm_enabled for s in state.specs),
            "dm_off": sum(not d.agent.dm_enabled for d in state.devices),
            "heartbeats_accepted": total(state.devices, "heartbeat:200"),
            "telemetry_accepted": total(state.devices, "telemetry:200"),
            "health_events_accepted": total(state.devices, "health:200"),
            "undeployed_enroll_refused": total(undeployed, "enroll:403"),
            "undeployed_certificates": sum(d.agent.enrolled for d in undeployed),
            "undeployed_reports": sum(
                1
                for c in self.recorder.of(undeployed_macs)
                if c.target == "dm" and c.purpose in ("heartbeat", "telemetry", "health")
            ),
            "undeployed_listed_by_dm": sum(d["mac"] in undeployed_macs for d in listed),
            "boot_hosts": sorted(boot_hosts),
            "boot_unexpected_hosts": sorted(unexpected),
        }

    def boot_contacts(
        self, devices: list[VirtualDevice], dm_host: str
    ) -> tuple[set[str], set[str]]:
        """Hosts each device contacted up to and including its first DM contact (its boot), and
        those among them that are neither a preconfigured boot domain nor the DM server."""
        seen: set[str] = set()
        first_dm: dict[str, bool] = {}
        names = {d.name for d in devices}
        for c in self.recorder.connections:
            if c.device not in names or first_dm.get(c.device):
                continue
            seen.add(c.host)
            if c.target == "dm":
                first_dm[c.device] = True
        allowed = set(BOOT_HOSTS) | {dm_host}
        return seen, seen - allowed


def run_fleet(scenario: Scenario, stack: Stack, work_dir: Path) -> tuple[FleetRun, Any]:
    """Run a scenario to its end (blocking); the run keeps its devices and recorder for checks."""
    from devices_virtual.driver.io import run_loop

    run = FleetRun(scenario, stack, work_dir)
    summary = run_loop(run.run())
    return run, summary
