"""Checks of features/devices.feature (DM-01, DM-02, DM-03, DM-12) over the facts of a virtual
fleet run: each device's state, every connection the devices opened, the DM switch, the DM
service's device list and what the connectivity-check and NTP stand-ins served.

`FleetFacts` is plain data (it round-trips through JSON), so a fleet's evidence can be kept in the
report and a negative control can hand the same checks a fleet whose property is broken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devices_virtual.agent import Phase
from devices_virtual.agent.domains import BOOT_HOSTS
from devices_virtual.driver.recorder import Connection
from devices_virtual.models import CATALOGUE, DeviceModel
from roomtrust.comply.checks import check, names_of, require, selected

CONNECTIVITY_CHECKS = frozenset({"www.msftncsi.com", "www.google.com"})
BOOT_NTP = frozenset({"time.windows.com"})
OPTIONAL_TARGETS = frozenset({"proxy_test", "vendor"})
REPORTS = ("heartbeat", "telemetry", "commands")


@dataclass(frozen=True)
class DeviceFacts:
    """One virtual device after the run, as its agent and driver left it."""

    name: str  # the MAC: how the recorder and the DM device list name the device
    model: dict[str, Any]  # the twin's DeviceModel, field by field
    deployed: bool
    enrolled: bool
    phase: str
    dm_enabled: bool
    channel_open: bool
    holds_tls_identity: bool  # the driver holds a client TLS context for the device
    certificate_file: bool  # a certificate file is stored for the device
    firmware_version: str
    clock_synced: bool
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.model.get("name"))


@dataclass(frozen=True)
class FleetFacts:
    devices: list[DeviceFacts]
    connections: list[Connection]
    dm_host: str
    listed: list[dict[str, Any]]  # the DM service's device list for the fleet's enterprise
    toggle: dict[str, Any] | None  # {"device_macs": [...], "at": t} of the DM switch
    standins_served: dict[str, int] | None  # requests served by each stand-in

    @property
    def deployed(self) -> list[DeviceFacts]:
        return [d for d in self.devices if d.deployed]

    @property
    def undeployed(self) -> list[DeviceFacts]:
        return [d for d in self.devices if not d.deployed]

    def to_dm(self, devices: Sequence[str], since: float = float("-inf")) -> list[Connection]:
        wanted = set(devices)
        return [
            c for c in self.connections if c.device in wanted and c.target == "dm" and c.at >= since
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "devices": [dataclasses.asdict(d) for d in self.devices],
            "connections": [c.as_dict() for c in self.connections],
            "dm_host": self.dm_host,
            "listed": self.listed,
            "toggle": self.toggle,
            "standins_served": self.standins_served,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FleetFacts:
        return cls(
            devices=[DeviceFacts(**d) for d in data["devices"]],
            connections=[Connection(**c) for c in data["connections"]],
            dm_host=data["dm_host"],
            listed=list(data["listed"]),
            toggle=data["toggle"],
            standins_served=data["standins_served"],
        )


def _enrolled(fleet: FleetFacts) -> list[DeviceFacts]:
    return selected([d for d in fleet.deployed if d.enrolled], "enrolled devices")


def _stranger(fleet: FleetFacts) -> DeviceFacts:
    strangers = selected(fleet.undeployed, "undeployed devices")
    require(len(strangers) == 1, f"expected one undeployed device, found {len(strangers)}")
    return strangers[0]


def _toggle(fleet: FleetFacts) -> tuple[list[str], float]:
    require(fleet.toggle is not None, "the run recorded no DM switch")
    assert fleet.toggle is not None
    macs = list(selected(list(fleet.toggle.get("device_macs", [])), "switched devices"))
    return macs, float(fleet.toggle["at"])


# -- DM-01 ---------------------------------------------------------------------------------------


@check("devices")
def every_model_has_enrolled_twin(fleet: FleetFacts) -> None:
    """Every managed model has a virtual device that enrolled, and only those models do."""
    models = {d.model_name for d in _enrolled(fleet)}
    require(models == set(CATALOGUE), f"enrolled models {names_of(models)}")


@check("devices")
def reports_accepted(fleet: FleetFacts) -> None:
    """Every enrolled device had at least one heartbeat and one telemetry report accepted."""
    short = [
        d.name
        for d in _enrolled(fleet)
        if d.stats.get("heartbeat:200", 0) < 1 or d.stats.get("telemetry:200", 0) < 1
    ]
    require(not short, f"devices without an accepted heartbeat and telemetry: {short}")


@check("devices")
def service_lists_every_model(fleet: FleetFacts) -> None:
    """The DM service lists an enrolled device of every managed model, and of no other."""
    rows = selected(fleet.listed, "devices listed by the DM service")
    models = {str(r.get("model")) for r in rows if r.get("enrolled")}
    require(
        models == set(CATALOGUE),
        f"the DM service lists enrolled {names_of(models)}; missing "
        f"{names_of(set(CATALOGUE) - models)}",
    )


@check("devices")
def twins_have_model_capabilities(fleet: FleetFacts) -> None:
    """Each twin carries its catalogue model's capabilities and firmware, and the fleet spans
    models with different hardware."""
    devices = selected(fleet.deployed, "deployed devices")
    wrong = []
    for d in devices:
        reference = CATALOGUE.get(d.model_name)
        if reference is None or d.model != dataclasses.asdict(reference):
            wrong.append(f"{d.name}: model {d.model_name} differs from the catalogue")
        elif d.firmware_version != reference.firmware_version:
            wrong.append(
                f"{d.name}: firmware {d.firmware_version}, model has {reference.firmware_version}"
            )
    require(not wrong, "; ".join(wrong))
    kinds = {DeviceModel(**d.model).components for d in devices}
    require(len(kinds) >= 2, f"every twin has the same hardware {kinds}: capabilities untested")


# -- DM-02 ---------------------------------------------------------------------------------------


@check("devices")
def stranger_refused_enrollment(fleet: FleetFacts) -> None:
    """The undeployed device asked to enroll, got 403, and is still waiting to enroll."""
    stranger = _stranger(fleet)
    require(stranger.stats.get("enroll:403", 0) >= 1, f"{stranger.name} was never refused (403)")
    require(
        stranger.phase in (Phase.ENROLL_WAIT, Phase.ENROLLING),
        f"{stranger.name} is in phase {stranger.phase}, past enrollment",
    )


@check("devices")
def stranger_holds_no_certificate(fleet: FleetFacts) -> None:
    """The undeployed device holds no certificate, file or TLS identity."""
    stranger = _stranger(fleet)
    held = [
        what
        for what, has in (
            ("enrolled state", stranger.enrolled),
            ("a TLS client identity", stranger.holds_tls_identity),
            ("a certificate file", stranger.certificate_file),
        )
        if has
    ]
    require(not held, f"the undeployed device {stranger.name} holds {', '.join(held)}")


@check("devices")
def stranger_sent_no_report(fleet: FleetFacts) -> None:
    """The undeployed device's only connections to the DM service are enrollment attempts."""
    stranger = _stranger(fleet)
    to_dm = selected(fleet.to_dm([stranger.name]), "DM connections of the undeployed device")
    other = {c.purpose for c in to_dm} - {"enroll"}
    require(not other, f"the undeployed device reached the DM service for {names_of(other)}")


@check("devices")
def stranger_not_listed(fleet: FleetFacts) -> None:
    """The DM service does not list the undeployed device."""
    stranger = _stranger(fleet)
    rows = selected(fleet.listed, "devices listed by the DM service")
    require(
        stranger.name not in {r.get("mac") for r in rows},
        f"the DM service lists the undeployed device {stranger.name}",
    )


# -- DM-03 ---------------------------------------------------------------------------------------


@check("devices")
def switched_talked_before(fleet: FleetFacts) -> None:
    """Before the switch, each switched device had sent heartbeats, telemetry and opened its
    command channel (so its later silence means something)."""
    macs, at = _toggle(fleet)
    before = [c for c in fleet.to_dm(macs) if c.at < at]
    quiet = {
        mac: names_of(set(REPORTS) - {c.purpose for c in before if c.device == mac}) for mac in macs
    }
    quiet = {mac: missing for mac, missing in quiet.items() if missing}
    require(not quiet, f"switched devices had not yet used (device: missing): {quiet}")


@check("devices")
def switched_silent_after(fleet: FleetFacts) -> None:
    """After the switch, the switched devices open no connection to the DM service and sit in
    the DM-off phase with the channel closed."""
    macs, at = _toggle(fleet)
    after = fleet.to_dm(macs, since=at)
    require(
        not after,
        f"{len(after)} connection(s) to the DM service after the switch, e.g. "
        f"{[(c.device, c.purpose, c.at) for c in after[:3]]}",
    )
    by_name = {d.name: d for d in fleet.devices}
    awake = [
        m
        for m in macs
        if m not in by_name or by_name[m].phase != Phase.DM_OFF or by_name[m].channel_open
    ]
    require(not awake, f"switched devices not off with the channel closed: {awake}")


@check("devices")
def others_still_connected(fleet: FleetFacts) -> None:
    """The devices nobody switched off still have DM on and their channel open."""
    macs = set(_toggle(fleet)[0])
    others = selected(
        [d for d in fleet.deployed if d.name not in macs and d.enrolled], "devices left on"
    )
    down = [d.name for d in others if not (d.dm_enabled and d.channel_open)]
    require(not down, f"devices left on are disconnected: {down}")


# -- DM-12 ---------------------------------------------------------------------------------------


def boot_contacts(fleet: FleetFacts) -> set[str]:
    """Hosts the devices contacted up to and including each one's first DM contact (its boot)."""
    seen: set[str] = set()
    booted: set[str] = set()
    names = {d.name for d in fleet.devices}
    for c in sorted(fleet.connections, key=lambda c: c.at):
        if c.device not in names or c.device in booted:
            continue
        seen.add(c.host)
        if c.target == "dm":
            booted.add(c.device)
    return seen


@check("devices")
def boot_contacts_preconfigured_only(fleet: FleetFacts) -> None:
    """During boot the devices contacted only the preconfigured connectivity-check and NTP
    domains and their DM server, and each of those."""
    selected(fleet.devices, "devices")
    seen = selected(boot_contacts(fleet), "hosts contacted during boot")
    unexpected = seen - set(BOOT_HOSTS) - {fleet.dm_host}
    require(not unexpected, f"devices contacted {names_of(unexpected)} during boot")
    expected = set(CONNECTIVITY_CHECKS | BOOT_NTP) | {fleet.dm_host}
    require(
        seen == expected, f"boot contacts {names_of(seen)}; missing {names_of(expected - seen)}"
    )


@check("devices")
def standins_answered(fleet: FleetFacts) -> None:
    """The connectivity-check and NTP stand-ins served every device, and every clock synced."""
    count = len(selected(fleet.devices, "devices"))
    require(fleet.standins_served is not None, "the run had no connectivity or NTP stand-ins")
    served = fleet.standins_served or {}
    short = {
        k: served.get(k, 0)
        for k in ("/ncsi.txt", "/generate_204", "ntp")
        if served.get(k, 0) < count
    }
    require(not short, f"stand-ins served fewer than the {count} devices: {short}")
    unsynced = [d.name for d in fleet.devices if not d.clock_synced]
    require(not unsynced, f"devices without a synced clock: {unsynced}")


@check("devices")
def optional_sites_not_contacted(fleet: FleetFacts) -> None:
    """The proxy test site and the vendor links (off by default, user action only) saw nothing."""
    connections = selected(fleet.connections, "recorded connections")
    hits = [(c.device, c.host) for c in connections if c.target in OPTIONAL_TARGETS]
    require(not hits, f"devices contacted optional sites on their own: {hits[:5]}")


@check("devices")
def connections_outbound(fleet: FleetFacts) -> None:
    """Every recorded connection was opened by the device (nothing reached a device)."""
    connections = selected(fleet.connections, "recorded connections")
    inbound = [(c.device, c.host, c.port) for c in connections if c.direction != "outbound"]
    require(not inbound, f"connections not opened by the device: {inbound[:5]}")
