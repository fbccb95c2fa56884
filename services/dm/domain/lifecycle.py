"""A device identity's lifecycle after enrollment (docs/dm-api.md has the state diagram).

- **Renewal.** An enrolled device asks for a new certificate over mutual TLS with its current one,
  sending a CSR made with a new key. Only a device in state `enrolled` gets one (a revoked or reset
  device is refused at authentication). The new certificate waits in `renewed_cert_serial`; the
  first request made with it revokes the old certificate and takes its place (`promote`), so a
  renewal whose answer was lost costs nothing: the device still holds a working certificate.
- **Remote actions.** Reboot, factory reset and log level travel as commands on the device's
  channel, one device or many; each request and each acknowledgement is in the operation log.
- **Factory reset.** Once the device acknowledges it, its certificate is revoked and its state is
  `reset`: it may enroll again only after an administrator deploys it again (`fleet.deploy_device`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.dm_channel import REMOTE_ACTIONS, CommandKind
from services.common import oplog
from services.common.ca import RegionCA, cert_pem, read_csr
from services.common.errors import Forbidden, Invalid, NotFound
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.commands import queue_command
from services.dm.domain.configuration import check_target, matching_devices
from services.dm.store.models import Device, DeviceCommand, OperationLogEntry

LOG_LEVELS = ("debug", "info", "warning", "error")
ACTIVE_STATES = ("deployed", "enrolled")
MAX_BULK = 10_000


@dataclass(frozen=True)
class Issued:
    certificate_pem: str
    ca_pem: str
    not_after: dt.datetime


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def renew(
    session: Session,
    ca: RegionCA,
    device: Device,
    *,
    presented_pem: str | None,
    csr_pem: str,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> Issued:
    """A new certificate for an enrolled device's new key; the old one stays valid until the new
    one is first used."""
    if device.state != "enrolled":
        raise Forbidden(f"a {device.state} device cannot renew its certificate", field=None)
    try:
        csr, subject = read_csr(csr_pem.encode())
    except ValueError as exc:
        raise Invalid(str(exc), field="csr_pem") from None
    if subject.common_name.lower() != device.mac or subject.serial_number != device.serial_number:
        raise Invalid("the CSR must name this device's MAC and serial number", field="csr_pem")
    if presented_pem:
        presented = x509.load_pem_x509_certificate(presented_pem.encode())
        if _public_der(presented.public_key()) == _public_der(csr.public_key()):
            raise Invalid("a renewal needs a new key, not the current one", field="csr_pem")
    cert = ca.sign_client_csr(csr, now, lifetime=lifetime)
    device.renewed_cert_serial = format(cert.serial_number, "x")
    device.renewed_not_after = cert.not_valid_after_utc
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=f"device:{device.mac}",
        action="device.certificate_renew",
        enterprise_id=device.enterprise_id,
        target=device.id,
        cert_serial=device.renewed_cert_serial,
        replaces=device.cert_serial,
    )
    return Issued(cert_pem(cert).decode(), ca.cert_pem.decode(), cert.not_valid_after_utc)


def promote(session: Session, device: Device, now: dt.datetime) -> None:
    """The renewed certificate was used: it becomes the device's certificate, and the old one is
    revoked (no device row names it any more, so it is refused from now on)."""
    old = device.cert_serial
    device.cert_serial, device.renewed_cert_serial = device.renewed_cert_serial, None
    device.cert_not_after, device.renewed_not_after = device.renewed_not_after, None
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=f"device:{device.mac}",
        action="device.certificate_revoke",
        enterprise_id=device.enterprise_id,
        target=device.id,
        cert_serial=old,
        reason="replaced by its renewal",
    )


def check_action(action: str, payload: Mapping[str, Any]) -> tuple[CommandKind, dict[str, Any]]:
    """The command kind and payload of a remote action, or `Invalid` naming the field."""
    try:
        kind = CommandKind(action)
    except ValueError:
        kind = None
    if kind not in REMOTE_ACTIONS or kind is None:
        names = ", ".join(k.value for k in REMOTE_ACTIONS)
        raise Invalid(f"action must be one of {names}", field="action")
    if kind is CommandKind.LOG_LEVEL:
        level = payload.get("level")
        if level not in LOG_LEVELS:
            raise Invalid(f"level must be one of {', '.join(LOG_LEVELS)}", field="level")
        return kind, {"level": level}
    if payload:
        field = sorted(payload)[0]
        raise Invalid(f"{kind.value} takes no {field}", field=field)
    return kind, {}


def request_action(
    session: Session,
    admin: AdminIdentity,
    *,
    action: str,
    payload: Mapping[str, Any],
    device_ids: Sequence[str] | None,
    target: Mapping[str, str] | None,
    now: dt.datetime,
) -> list[tuple[Device, DeviceCommand]]:
    """Queue one remote action for each named device (or each device matching `target`: site_id,
    model, tag). Every device must be this enterprise's and deployed or enrolled."""
    kind, clean = check_action(action, payload)
    if (device_ids is None) == (target is None):
        raise Invalid("name the devices (device_ids) or a target, not both", field="device_ids")
    if device_ids is not None:
        if not device_ids or len(device_ids) > MAX_BULK:
            raise Invalid(f"device_ids holds 1 to {MAX_BULK} devices", field="device_ids")
        devices = []
        for device_id in dict.fromkeys(device_ids):
            device = session.get(Device, device_id)
            if device is None or device.enterprise_id != admin.enterprise_id:
                raise NotFound(f"no such device in this enterprise: {device_id}", "device_ids")
            devices.append(device)
    else:
        assert target is not None
        clean_target = check_target(session, admin, target)
        devices = matching_devices(session, admin.enterprise_id, clean_target)
    queued = []
    for device in devices:
        if device.state not in ACTIVE_STATES:
            raise Invalid(f"device {device.id} is {device.state}", field="device_ids")
        command = queue_command(session, device, kind, clean, now)
        queued.append((device, command))
        oplog.record(
            session,
            OperationLogEntry,
            at=now,
            actor=admin.email,
            action=f"device.{kind.value}",
            enterprise_id=admin.enterprise_id,
            target=device.id,
            command_id=command.id,
            **clean,
        )
    return queued


def acknowledged(
    session: Session, device: Device, command: DeviceCommand, result: Any, now: dt.datetime
) -> None:
    """A device acknowledged a remote action: log it; a factory reset also revokes the device's
    certificate and leaves it `reset` until an administrator deploys it again."""
    kind = CommandKind(command.kind)
    if kind not in REMOTE_ACTIONS:
        return
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=f"device:{device.mac}",
        action=f"device.{kind.value}_done",
        enterprise_id=device.enterprise_id,
        target=device.id,
        command_id=command.id,
        result=result if isinstance(result, dict) else {},
    )
    if kind is CommandKind.FACTORY_RESET:
        device.state = "reset"
        device.revoked_at = now
        device.renewed_cert_serial = device.renewed_not_after = None


def redeploy(
    session: Session,
    admin: AdminIdentity,
    device: Device,
    *,
    serial_number: str,
    model: str,
    site_id: str,
    name: str | None,
    tags: list[str],
    now: dt.datetime,
) -> Device:
    """Deploy an un-deployed or reset device again (same row, same id, its history kept): it may
    then enroll anew, with a new key. Commands still queued for its old identity are dropped."""
    device.serial_number, device.model, device.site_id = serial_number, model, site_id
    device.name, device.tags = name, tags
    device.state, device.deployed_at = "deployed", now
    device.enrolled_at = device.revoked_at = None
    device.cert_serial = device.renewed_cert_serial = None
    device.cert_not_after = device.renewed_not_after = None
    device.configuration_version = None
    stale = session.scalars(
        select(DeviceCommand).where(
            DeviceCommand.device_id == device.id, DeviceCommand.acked_at.is_(None)
        )
    )
    for command in stale:
        command.acked_at = now
        command.result = {"dropped": "the device was deployed again"}
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="device.redeploy",
        enterprise_id=admin.enterprise_id,
        target=device.id,
        mac=device.mac,
        model=model,
        site=site_id,
    )
    return device
