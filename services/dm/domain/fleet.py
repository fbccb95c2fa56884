"""Sites and deployment: an administrator deploys a device into a site, or un-deploys it.

Un-deploying revokes the device's certificate at once: the device row keeps the certificate serial
with the state `revoked`, and every device request checks that state. An un-deployed (or factory
reset) device of the same enterprise can be deployed again: same row, and it enrolls anew.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.clock import as_utc
from services.common.errors import Conflict, Invalid, NotFound
from services.dm.domain import lifecycle
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.catalogue import check_model
from services.dm.domain.fields import normalise_mac
from services.dm.domain.ids import new_id
from services.dm.store import signals
from services.dm.store.models import Device, OperationLogEntry, Site

REDEPLOYABLE = ("revoked", "reset")


def create_site(
    session: Session,
    admin: AdminIdentity,
    *,
    name: str,
    time_zone: str,
    latitude: float | None,
    longitude: float | None,
    server_id: str | None,
    now: dt.datetime,
) -> Site:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {time_zone!r}", field="time_zone") from None
    if session.scalar(
        select(Site.id).where(Site.enterprise_id == admin.enterprise_id, Site.name == name)
    ):
        raise Conflict("a site with this name exists", field="name")
    site = Site(
        id=new_id(),
        enterprise_id=admin.enterprise_id,
        name=name,
        time_zone=time_zone,
        latitude=latitude,
        longitude=longitude,
        server_id=server_id,
    )
    session.add(site)
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="site.create",
        enterprise_id=admin.enterprise_id,
        target=site.id,
        name=name,
    )
    return site


def list_sites(session: Session, admin: AdminIdentity) -> list[Site]:
    return list(session.scalars(select(Site).where(Site.enterprise_id == admin.enterprise_id)))


def deploy_device(
    session: Session,
    admin: AdminIdentity,
    *,
    mac: str,
    serial_number: str,
    model: str,
    site_id: str,
    name: str | None,
    tags: list[str],
    now: dt.datetime,
) -> Device:
    check_model(model)
    mac = normalise_mac(mac)
    if not serial_number.strip():
        raise Invalid("serial number is empty", field="serial_number")
    site = session.get(Site, site_id)
    if site is None or site.enterprise_id != admin.enterprise_id:
        raise Invalid("no such site in this enterprise", field="site_id")
    existing = session.scalar(select(Device).where(Device.mac == mac).with_for_update())
    if existing is not None:
        if existing.state not in REDEPLOYABLE:
            raise Conflict("a device with this MAC is already deployed", field="mac")
        if existing.enterprise_id != admin.enterprise_id:
            # its history (telemetry, alerts, bundles) belongs to the other enterprise
            raise Conflict("this MAC was deployed by another enterprise", field="mac")
        return lifecycle.redeploy(
            session,
            admin,
            existing,
            serial_number=serial_number.strip(),
            model=model,
            site_id=site.id,
            name=name,
            tags=tags,
            now=now,
        )
    device = Device(
        id=new_id(),
        enterprise_id=admin.enterprise_id,
        site_id=site.id,
        mac=mac,
        serial_number=serial_number.strip(),
        model=model,
        name=name,
        tags=tags,
        state="deployed",
        deployed_at=now,
    )
    session.add(device)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("a device with this MAC is already deployed", field="mac") from None
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="device.deploy",
        enterprise_id=admin.enterprise_id,
        target=device.id,
        mac=mac,
        model=model,
        site=site.id,
    )
    return device


def undeploy_device(
    session: Session, admin: AdminIdentity, device_id: str, now: dt.datetime
) -> Device:
    device = _own_device(session, admin, device_id)
    device.state = "revoked"
    device.revoked_at = now
    signals.send(session, signals.Signal.REVOKED, device.id)  # its channel, on any replica
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="device.undeploy",
        enterprise_id=admin.enterprise_id,
        target=device.id,
        cert_serial=device.cert_serial,
    )
    return device


def _own_device(session: Session, admin: AdminIdentity, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None or device.enterprise_id != admin.enterprise_id:
        raise NotFound("no such device in this enterprise", field="device_id")
    return device


@dataclass(frozen=True)
class DeviceView:
    device: Device
    status: str

    def as_dict(self) -> dict[str, Any]:
        d = self.device
        return {
            "device_id": d.id,
            "mac": d.mac,
            "serial_number": d.serial_number,
            "model": d.model,
            "name": d.name,
            "site_id": d.site_id,
            "tags": d.tags,
            "status": self.status,
            "enrolled": d.enrolled_at is not None,
            "last_seen": as_utc(d.last_seen).isoformat() if d.last_seen else None,
            "software_version": d.software_version,
            "firmware_version": d.firmware_version,
            "configuration_version": d.configuration_version,
            "network_type": d.network_type,
            "ipv4_address": d.ipv4_address,
        }


def device_status(device: Device, now: dt.datetime, offline_after: dt.timedelta) -> str:
    if device.state in REDEPLOYABLE:
        return str(device.state)
    if device.last_seen is None:
        return "deployed"
    return "online" if now - as_utc(device.last_seen) <= offline_after else "offline"


def list_devices(
    session: Session, admin: AdminIdentity, now: dt.datetime, offline_after: dt.timedelta
) -> list[DeviceView]:
    devices = session.scalars(
        select(Device).where(Device.enterprise_id == admin.enterprise_id).order_by(Device.mac)
    )
    return [DeviceView(d, device_status(d, now, offline_after)) for d in devices]
