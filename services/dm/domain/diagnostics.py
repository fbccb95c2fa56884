"""Remote diagnosis (DM-05): an administrator asks a device for diagnostics over the command
channel; the device uploads a bundle over mutual TLS holding only the DM-09 diagnosis fields
(device ID, MAC, IP) and log files. Bundles live in the region's object store, only administrators
of the device's enterprise can fetch them, and they are deleted after 180 days."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.dm_channel import CommandKind
from protocol.fields import DIAGNOSTICS_UPLOAD_FIELDS
from services.common import oplog
from services.common.errors import Invalid, NotFound
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.commands import queue_command
from services.dm.domain.ids import new_id
from services.dm.store.models import Device, DeviceCommand, DiagnosticBundle, OperationLogEntry

RETENTION = dt.timedelta(days=180)
MAX_LOG_BYTES = 2 * 1024 * 1024
BUNDLE_FIELDS = DIAGNOSTICS_UPLOAD_FIELDS


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> int: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


def request(
    session: Session, admin: AdminIdentity, device_id: str, now: dt.datetime
) -> DeviceCommand:
    device = session.get(Device, device_id)
    if device is None or device.enterprise_id != admin.enterprise_id:
        raise NotFound("no such device in this enterprise", field="device_id")
    command = queue_command(
        session, device, CommandKind.DIAGNOSTICS, {"upload": "/v1/device/diagnostics"}, now
    )
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="diagnostics.request",
        enterprise_id=admin.enterprise_id,
        target=device.id,
        command_id=command.id,
    )
    return command


def _check_bundle(device: Device, body: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(body) - set(BUNDLE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise Invalid(f"{field!r} is not a remote-diagnosis field (DM-09)", field=field)
    if body.get("device_id") != device.id:
        raise Invalid("device_id does not match the device certificate", field="device_id")
    if body.get("mac") != device.mac:
        raise Invalid("mac does not match the device certificate", field="mac")
    try:
        ip = str(ipaddress.ip_address(str(body.get("ip_address"))))
    except (ValueError, TypeError):
        raise Invalid("not an IP address", field="ip_address") from None
    logs = body.get("logs")
    if not isinstance(logs, dict) or not logs:
        raise Invalid("logs must map log file names to their text", field="logs")
    size = 0
    for name, text in logs.items():
        if not isinstance(name, str) or not name.endswith(".log") or "/" in name:
            raise Invalid(f"log file names end in .log: {name!r}", field="logs")
        if not isinstance(text, str):
            raise Invalid("log contents must be text", field=f"logs.{name}")
        size += len(text.encode())
    if size > MAX_LOG_BYTES:
        raise Invalid(f"log files exceed {MAX_LOG_BYTES} bytes", field="logs")
    return {"device_id": device.id, "mac": device.mac, "ip_address": ip, "logs": logs}


def upload(
    session: Session, device: Device, body: Mapping[str, Any], blobs: BlobStore, now: dt.datetime
) -> DiagnosticBundle:
    bundle = _check_bundle(device, body)
    command_id = body.get("command_id")
    command = session.get(DeviceCommand, command_id) if isinstance(command_id, int) else None
    if command is None or command.device_id != device.id or command.kind != CommandKind.DIAGNOSTICS:
        raise Invalid("no diagnostics request with this command_id", field="command_id")
    data = json.dumps({**bundle, "collected_at": now.isoformat()}).encode()
    record = DiagnosticBundle(
        id=new_id(),
        enterprise_id=device.enterprise_id,
        device_id=device.id,
        created_at=now,
        size=len(data),
        file_name="",
    )
    record.file_name = f"{record.id}.json"
    blobs.put(record.file_name, data)
    session.add(record)
    command.acked_at, command.result = now, {"bundle_id": record.id}
    return record


def fetch(
    session: Session, admin: AdminIdentity, bundle_id: str, blobs: BlobStore, now: dt.datetime
) -> bytes:
    record = session.get(DiagnosticBundle, bundle_id)
    if record is None or record.enterprise_id != admin.enterprise_id:
        raise NotFound("no such diagnostics bundle in this enterprise", field="bundle_id")
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="diagnostics.fetch",
        enterprise_id=admin.enterprise_id,
        target=bundle_id,
    )
    return blobs.get(record.file_name)


def list_bundles(session: Session, admin: AdminIdentity) -> list[DiagnosticBundle]:
    return list(
        session.scalars(
            select(DiagnosticBundle).where(DiagnosticBundle.enterprise_id == admin.enterprise_id)
        )
    )


def purge_expired(session: Session, blobs: BlobStore, now: dt.datetime) -> int:
    """Delete bundles older than 180 days, row and object; returns how many went."""
    expired = list(
        session.scalars(
            select(DiagnosticBundle).where(DiagnosticBundle.created_at < now - RETENTION)
        )
    )
    for record in expired:
        blobs.delete(record.file_name)
        session.delete(record)
    return len(expired)
