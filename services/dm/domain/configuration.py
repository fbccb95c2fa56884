"""Bulk configuration (DM-13): versioned profiles, pushes to every matching device, and drift.

A push queues one `config` command per matching device; the device acknowledges the version it
applied, which becomes its `configuration_version`. Drift is every targeted device whose applied
version differs from its profile's newest version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.dm_channel import CommandKind
from services.common import oplog
from services.common.errors import Invalid, NotFound
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.catalogue import check_model
from services.dm.domain.commands import queue_command
from services.dm.domain.config_schema import keys_for_model, validate_values
from services.dm.store.models import (
    ConfigProfile,
    Device,
    DeviceCommand,
    OperationLogEntry,
    Site,
)

TARGET_KEYS = ("site_id", "model", "tag")


def _check_target(
    session: Session, admin: AdminIdentity, target: Mapping[str, Any]
) -> dict[str, str]:
    unknown = set(target) - set(TARGET_KEYS)
    if unknown:
        field = sorted(unknown)[0]
        raise Invalid(f"target can name only {', '.join(TARGET_KEYS)}", field=f"target.{field}")
    if not target:
        raise Invalid("a profile needs a target (site_id, model or tag)", field="target")
    clean = {k: str(v) for k, v in target.items()}
    if "model" in clean:
        check_model(clean["model"])
    if "site_id" in clean:
        site = session.get(Site, clean["site_id"])
        if site is None or site.enterprise_id != admin.enterprise_id:
            raise Invalid("no such site in this enterprise", field="target.site_id")
    return clean


def check_target(
    session: Session, admin: AdminIdentity, target: Mapping[str, Any]
) -> dict[str, str]:
    """A device target (site_id, model, tag) checked against this enterprise."""
    return _check_target(session, admin, target)


def create_profile(
    session: Session,
    admin: AdminIdentity,
    *,
    name: str,
    values: Mapping[str, Any],
    target: Mapping[str, Any],
    now: dt.datetime,
) -> ConfigProfile:
    clean_values = validate_values(values)
    clean_target = _check_target(session, admin, target)
    latest = session.scalar(
        select(func.max(ConfigProfile.version)).where(
            ConfigProfile.enterprise_id == admin.enterprise_id, ConfigProfile.name == name
        )
    )
    profile = ConfigProfile(
        enterprise_id=admin.enterprise_id,
        name=name,
        version=(latest or 0) + 1,
        values=clean_values,
        target=clean_target,
        created_at=now,
    )
    session.add(profile)
    session.flush()
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="config.profile",
        enterprise_id=admin.enterprise_id,
        target=f"{name} v{profile.version}",
        keys=sorted(clean_values),
    )
    return profile


def matching_devices(
    session: Session, enterprise_id: str, target: Mapping[str, str]
) -> list[Device]:
    query = select(Device).where(
        Device.enterprise_id == enterprise_id, Device.state.not_in(("revoked", "reset"))
    )
    if "site_id" in target:
        query = query.where(Device.site_id == target["site_id"])
    if "model" in target:
        query = query.where(Device.model == target["model"])
    devices = list(session.scalars(query))
    if "tag" in target:
        devices = [d for d in devices if target["tag"] in (d.tags or [])]
    return devices


def version_label(profile: ConfigProfile) -> str:
    return f"{profile.name}@{profile.version}"


def push_profile(
    session: Session, admin: AdminIdentity, profile_id: int, now: dt.datetime
) -> list[Device]:
    profile = session.get(ConfigProfile, profile_id)
    if profile is None or profile.enterprise_id != admin.enterprise_id:
        raise NotFound("no such configuration profile", field="profile_id")
    devices = matching_devices(session, admin.enterprise_id, profile.target)
    for device in devices:
        queue_command(
            session,
            device,
            CommandKind.CONFIG,
            {
                "version": version_label(profile),
                "values": keys_for_model(profile.values, device.model),
            },
            now,
        )
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="config.push",
        enterprise_id=admin.enterprise_id,
        target=version_label(profile),
        devices=len(devices),
    )
    return devices


def drift(session: Session, admin: AdminIdentity) -> list[dict[str, Any]]:
    """Devices whose applied configuration is not the newest version of a profile targeting them."""
    newest: dict[str, ConfigProfile] = {}
    for profile in session.scalars(
        select(ConfigProfile)
        .where(ConfigProfile.enterprise_id == admin.enterprise_id)
        .order_by(ConfigProfile.version)
    ):
        newest[profile.name] = profile
    rows = []
    for profile in newest.values():
        wanted = version_label(profile)
        for device in matching_devices(session, admin.enterprise_id, profile.target):
            if device.configuration_version != wanted:
                rows.append(
                    {
                        "device_id": device.id,
                        "profile": profile.name,
                        "wanted": wanted,
                        "applied": device.configuration_version,
                    }
                )
    return rows


def push_status(session: Session, admin: AdminIdentity, profile_id: int) -> dict[str, Any]:
    """What became of the pushes of a profile's newest version, from the devices' own
    acknowledgements: commands queued, delivered, acknowledged, and of those applied or refused
    (with the key and reason the device gave, counted by reason)."""
    profile = session.get(ConfigProfile, profile_id)
    if profile is None or profile.enterprise_id != admin.enterprise_id:
        raise NotFound("no such configuration profile", field="profile_id")
    version = version_label(profile)
    rows = session.execute(
        select(DeviceCommand)
        .join(Device, Device.id == DeviceCommand.device_id)
        .where(
            Device.enterprise_id == admin.enterprise_id,
            DeviceCommand.kind == CommandKind.CONFIG,
        )
    ).scalars()
    status: dict[str, Any] = {
        "version": version,
        "commands": 0,
        "devices": 0,
        "delivered": 0,
        "acknowledged": 0,
        "applied": 0,
        "refused": 0,
        "reasons": {},
    }
    devices: set[str] = set()
    for command in rows:
        if command.payload.get("version") != version:
            continue
        status["commands"] += 1
        devices.add(command.device_id)
        status["delivered"] += command.delivered_at is not None
        if command.acked_at is None:
            continue
        status["acknowledged"] += 1
        result = command.result or {}
        if result.get("applied") is True:
            status["applied"] += 1
        else:
            status["refused"] += 1
            reason = f"{result.get('key')}: {result.get('reason')}"
            status["reasons"][reason] = status["reasons"].get(reason, 0) + 1
    status["devices"] = len(devices)
    return status
