"""The set-up step before a load run, through the administrator APIs only (no database access).

For each fleet of the scenario it registers a DM enterprise with its administrator, creates the
sites and one configuration profile (what the administrator users push), and deploys as many devices
as the device users need, drawn from the fleet's model mix. Undeployed devices get identities and
nothing else. For meeting users it registers a meeting enterprise and creates the accounts.

The result is a JSON-able `Provision`: the targets (URL and CA certificate of each region, the admin
account, the profile) and the identities of every user kind. The Locust master hands the identities
out one by one to users on any worker (`load.client.nodes`); private keys are made by the worker
that runs the device and never leave it.
"""

from __future__ import annotations

import itertools
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devices_virtual.scenario import Fleet
from load.kinds import UserKind
from load.scenario import LoadScenario
from protocol.meeting_client import MeetingApi
from protocol.stack import Stack
from services.dm.client import DmAdmin

PASSWORD = "load test password 2026"
PROFILE_VALUES = {"audio.volume": 55, "screensaver.timeout_s": 600}
Provision = dict[str, Any]


def new_mac() -> str:
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def _mix(fleets: list[Fleet]) -> list[tuple[Fleet, str]]:
    """(fleet, model) interleaved in proportion to the fleets' model counts."""
    pools = [(f, m, n) for f in fleets for m, n in f.models.items() if n > 0]
    total = sum(n for _f, _m, n in pools)
    order: list[tuple[float, int, Fleet, str]] = []
    for index, (fleet, model, count) in enumerate(pools):
        order += [((i + 0.5) / count, index, fleet, model) for i in range(count)]
    order.sort(key=lambda item: (item[0], item[1]))
    return [(fleet, model) for _t, _i, fleet, model in order][:total]


def device_identities(
    fleets: list[Fleet], count: int, run_id: str, label: str = "load"
) -> list[dict[str, Any]]:
    """`count` new device identities (MAC, serial number, model, name), cycling the fleets' mix."""
    mix = _mix(fleets)
    out = []
    for index, (fleet, model) in zip(range(count), itertools.cycle(mix), strict=False):
        site = fleet.sites[index % len(fleet.sites)]
        out.append(
            {
                "fleet": fleet.name,
                "mac": new_mac(),
                "serial_number": f"LD{secrets.token_hex(5).upper()}",
                "model": model,
                "name": f"{label} {run_id} {index + 1}",
                "site": index % len(fleet.sites),
                "time_zone": site.time_zone,
            }
        )
    return out


class DmTarget:
    """One fleet's DM enterprise, made through the admin API."""

    def __init__(self, fleet: Fleet, stack: Stack, run_id: str) -> None:
        region = stack.endpoint("dm", fleet.dm_region)
        self.fleet = fleet
        self.url, self.ca_file = region.url, region.ca_file
        self.admin = DmAdmin(self.url, self.ca_file)
        self.email = f"load-{run_id}-{fleet.name}@example.com"
        self.admin.register(f"Load {run_id} {fleet.name}", self.email, PASSWORD)
        self.admin.login(self.email, PASSWORD)
        self.site_ids = [self.admin.create_site(site.name, site.time_zone) for site in fleet.sites]
        profile = self.admin.create_profile(
            f"load-{run_id}", PROFILE_VALUES, {"site_id": self.site_ids[0]}
        )
        self.profile_id = int(profile["profile_id"])

    def deploy(self, identities: list[dict[str, Any]], threads: int = 8) -> None:
        def one(identity: dict[str, Any]) -> None:
            identity["device_id"] = self.admin.deploy(
                identity["mac"],
                identity["serial_number"],
                identity["model"],
                self.site_ids[identity["site"]],
                name=identity["name"],
            )

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, identities))

    def description(self) -> dict[str, Any]:
        return {
            "region": self.fleet.dm_region,
            "url": self.url,
            "ca_pem": self.ca_file.read_text(),
            "admin": {"email": self.email, "password": PASSWORD},
            "site_ids": self.site_ids,
            "profile_id": self.profile_id,
        }

    def close(self) -> None:
        self.admin.close()


def _meeting_accounts(
    fleet: Fleet, stack: Stack, run_id: str, count: int, threads: int = 4
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert fleet.meeting_region is not None
    region = stack.endpoint("meeting", fleet.meeting_region)
    ca_file = region.ca_file
    with MeetingApi(region.url, ca_file) as api:
        api.register_enterprise(f"Load {run_id} {fleet.name}")

        def one(index: int) -> dict[str, Any]:
            name = f"Load User {index + 1}"
            account = api.create_account(name, "user", None, PASSWORD)
            return {
                "fleet": fleet.name,
                "username": account["username"],
                "password": PASSWORD,
                "display_name": name,
            }

        with ThreadPoolExecutor(threads) as pool:
            accounts = list(pool.map(one, range(count)))
    target = {"region": fleet.meeting_region, "url": region.url, "ca_pem": ca_file.read_text()}
    return target, accounts


def _spread(count: int, parts: int) -> list[int]:
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def provision(scenario: LoadScenario, stack: Stack, users: int | None = None) -> Provision:
    """Make everything the scenario's users need for `users` Locust users (at most)."""
    run_id = secrets.token_hex(3)
    need = scenario.expected_users(users)
    identities: dict[UserKind, list[dict[str, Any]]] = {k: [] for k in need}
    targets: dict[str, dict[str, Any]] = {f.name: {} for f in scenario.fleets}
    dm_targets: dict[str, DmTarget] = {}
    try:
        for fleet in scenario.fleets:
            if any(need.get(k) for k in ("device", "admin", "operator", "undeployed")):
                dm_targets[fleet.name] = DmTarget(fleet, stack, run_id)
        devices = device_identities(scenario.fleets, need.get("device", 0), run_id)
        for name, target in dm_targets.items():
            target.deploy([d for d in devices if d["fleet"] == name])
            targets[name]["dm"] = target.description()
        identities["device"] = devices
        # devices no administrator deploys: identities only, nothing is sent to the service
        identities["undeployed"] = device_identities(
            scenario.fleets, need.get("undeployed", 0), run_id, "undeployed"
        )
        admins = [
            {"fleet": name, "email": t.email, "password": PASSWORD}
            for name, t in dm_targets.items()
        ]
        identities["admin"] = [admins[i % len(admins)] for i in range(need.get("admin", 0))]
        identities["operator"] = [admins[i % len(admins)] for i in range(need.get("operator", 0))]
        # moderators and participants of each meeting fleet share its enterprise (a participant
        # joins only conferences of its own fleet)
        fleets = scenario.meeting_fleets
        moderators = _spread(need.get("moderator", 0), len(fleets)) if fleets else []
        participants = _spread(need.get("participant", 0), len(fleets)) if fleets else []
        for fleet, mods, parts in zip(fleets, moderators, participants, strict=True):
            if mods + parts:
                meeting, made = _meeting_accounts(fleet, stack, run_id, mods + parts)
                targets[fleet.name]["meeting"] = meeting
                identities.setdefault("moderator", []).extend(made[:mods])
                identities.setdefault("participant", []).extend(made[mods:])
    finally:
        for target in dm_targets.values():
            target.close()
    return {
        "run_id": run_id,
        "scenario": scenario.name,
        "targets": targets,
        "identities": identities,
    }


def write_provision(provision_data: Provision, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(provision_data, indent=1))
    path.chmod(0o600)
    return path
