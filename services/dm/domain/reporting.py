"""Authenticated device sessions: heartbeat, telemetry and health events (DM-04, DM-05, DM-09).

Every device request is checked against the store: the certificate's serial must belong to an
enrolled device whose state is not revoked, so revocation takes effect on the very next request.

A heartbeat or telemetry report may carry `report_id` (`protocol.fields.REPORT_ID`), an envelope
field the device chooses and repeats when it retries. A telemetry report is stored once per
(device, report id): the insert is `ON CONFLICT DO NOTHING` on a unique index, so a retry after
a lost answer, on whichever replica, stores nothing twice and is answered the same. A heartbeat
stores no row: a retry sets the same fields again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from protocol.fields import REPORT_ID, REPORT_ID_PATTERN, TELEMETRY_FIELDS
from services.common.clock import utcnow
from services.common.errors import Forbidden, Invalid, Unauthenticated
from services.dm.domain import alerts, lifecycle
from services.dm.domain.fields import validate_telemetry
from services.dm.store import touches
from services.dm.store.inserts import insert_new
from services.dm.store.models import Device, TelemetryReading

HEALTH_COMPONENTS = ("camera", "microphone", "display", "firmware_update")
# The reported fields kept in a column of the device row, beside the ones checked against it.
_REPORT_ID = re.compile(REPORT_ID_PATTERN)
_DEVICE_COLUMNS = tuple(
    name
    for name in TELEMETRY_FIELDS
    if name in Device.__table__.columns and name not in ("mac", "serial_number")
)


def certificate_serial(cert_pem: str | None) -> str:
    if not cert_pem:
        raise Unauthenticated("a device client certificate is required (mutual TLS)")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return format(cert.serial_number, "x")


def authenticate_device(
    session: Session, cert_pem: str | None, now: dt.datetime | None = None
) -> Device:
    """The device of this certificate. A renewed certificate's first use revokes the one it
    replaces (`lifecycle.promote`); a replaced, un-deployed or reset one is refused."""
    serial = certificate_serial(cert_pem)
    device = session.scalar(
        select(Device).where(
            or_(Device.cert_serial == serial, Device.renewed_cert_serial == serial)
        )
    )
    if device is None:
        raise Forbidden("certificate is not bound to an enrolled device")
    if device.state == "revoked":
        raise Forbidden("certificate revoked: device was un-deployed")
    if device.state == "reset":
        raise Forbidden("certificate revoked: device was factory reset")
    if device.renewed_cert_serial == serial:
        lifecycle.promote(session, device, now or utcnow())
    return device


def split_envelope(payload: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The report's id (None when the device sent none) and the report without its envelope."""
    body = dict(payload)
    report_id = body.pop(REPORT_ID, None)
    if report_id is not None and not (isinstance(report_id, str) and _REPORT_ID.match(report_id)):
        raise Invalid("a report id is 8 to 64 letters, digits, - or _", field=REPORT_ID)
    return report_id, body


def heartbeat(
    session: Session, device: Device, payload: Mapping[str, Any], now: dt.datetime
) -> None:
    _report_id, body = split_envelope(payload)
    fields = validate_telemetry(body) if body else {}
    _apply(session, device, fields, now)


def store_telemetry(
    session: Session, device: Device, payload: Mapping[str, Any], now: dt.datetime
) -> bool:
    """Store one report; False when this report id was stored already (a retry)."""
    report_id, body = split_envelope(payload)
    fields = validate_telemetry(body)
    for key in ("mac", "serial_number"):
        own = device.mac if key == "mac" else device.serial_number
        if key in fields and fields[key] != own:
            raise Invalid(f"{key} does not match the device certificate", field=key)
    _apply(session, device, fields, now)
    if report_id is None:
        session.add(TelemetryReading(device_id=device.id, received_at=now, fields=fields))
        return True
    values = {"device_id": device.id, "received_at": now, "fields": fields, "report_id": report_id}
    return insert_new(session, TelemetryReading, values) is not None


def _apply(session: Session, device: Device, fields: Mapping[str, str], now: dt.datetime) -> None:
    """The device's row takes the report's values when the transaction commits (`touches`)."""
    values: dict[str, Any] = {"last_seen": now}
    if "status" in fields:
        values["reported_status"] = fields["status"]
    values.update({column: fields[column] for column in _DEVICE_COLUMNS if column in fields})
    touches.touch(session, device, values)


def report_health(
    session: Session, device: Device, payload: Mapping[str, Any], now: dt.datetime
) -> None:
    unknown = set(payload) - {"component", "state", "detail"}
    if unknown:
        field = sorted(unknown)[0]
        raise Invalid(f"{field!r} is not a health-event field", field=field)
    component = payload.get("component")
    state = payload.get("state")
    detail = payload.get("detail") or ""
    if component not in HEALTH_COMPONENTS:
        raise Invalid(f"component must be one of {', '.join(HEALTH_COMPONENTS)}", field="component")
    if state not in ("fault", "ok"):
        raise Invalid("state must be fault or ok", field="state")
    if not isinstance(detail, str) or len(detail) > 200:
        raise Invalid("detail must be text of at most 200 characters", field="detail")
    touches.touch(session, device, {"last_seen": now})
    if state == "fault":
        alerts.raise_fault(session, device, component, detail, now)
    else:
        alerts.clear_fault(session, device, component, now)
