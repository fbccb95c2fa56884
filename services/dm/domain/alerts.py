"""Health alerts (DM-05): rules, severities and the active -> acknowledged -> cleared life cycle.

Rules: a device offline longer than N minutes; a reported fault of the camera, microphone or
display; a failed firmware update. `evaluate()` runs the time-based rules at the `now` it is given,
so tests and the simulator drive it with their own clocks.

An alert is unique per open condition (device, rule, component): a partial unique index on the
open ones, written with `INSERT ... ON CONFLICT DO NOTHING`, with no read before the write. So two
evaluators racing (two replicas, or one slowed by a lock) raise it once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.clock import as_utc
from services.common.errors import Conflict, NotFound
from services.dm.domain.accounts import AdminIdentity
from services.dm.store.inserts import insert_new
from services.dm.store.models import Alert, Device, OperationLogEntry

OPEN_STATES = ("active", "acknowledged")
SEVERITY = {"offline": "major", "fault": "major", "firmware_update_failed": "critical"}


def _open_alert(session: Session, device_id: str, rule: str, component: str | None) -> Alert | None:
    query = select(Alert).where(
        Alert.device_id == device_id, Alert.rule == rule, Alert.state.in_(OPEN_STATES)
    )
    if component is not None:
        query = query.where(Alert.component == component)
    return session.scalars(query).first()


def _raise(
    session: Session,
    device: Device,
    rule: str,
    component: str | None,
    detail: str,
    now: dt.datetime,
) -> bool:
    """Open the alert unless it is open already; whether this call opened it."""
    values = {
        "enterprise_id": device.enterprise_id,
        "device_id": device.id,
        "rule": rule,
        "component": component,
        "severity": SEVERITY[rule],
        "state": "active",
        "raised_at": now,
        "detail": detail,
    }
    return insert_new(session, Alert, values) is not None


def _clear(
    session: Session, device_id: str, rule: str, component: str | None, now: dt.datetime
) -> None:
    alert = _open_alert(session, device_id, rule, component)
    if alert is not None:
        alert.state = "cleared"
        alert.cleared_at = now


def raise_fault(
    session: Session, device: Device, component: str, detail: str, now: dt.datetime
) -> bool:
    rule = "firmware_update_failed" if component == "firmware_update" else "fault"
    return _raise(session, device, rule, component, detail, now)


def clear_fault(session: Session, device: Device, component: str, now: dt.datetime) -> None:
    rule = "firmware_update_failed" if component == "firmware_update" else "fault"
    _clear(session, device.id, rule, component, now)


def evaluate(session: Session, now: dt.datetime, offline_after: dt.timedelta) -> int:
    """Raise offline alerts for enrolled devices silent longer than `offline_after`, and clear
    them for devices heard from again; returns how many alerts were raised."""
    raised = 0
    devices = session.scalars(
        select(Device)
        .where(Device.state == "enrolled", Device.last_seen.is_not(None))
        .order_by(Device.id)  # one order for every evaluator: racing inserts wait, not deadlock
    ).all()
    for device in devices:
        assert device.last_seen is not None
        silent = now - as_utc(device.last_seen)
        if silent > offline_after:
            minutes = int(silent.total_seconds() // 60)
            if _raise(session, device, "offline", None, f"no contact for {minutes} min", now):
                raised += 1
        else:
            _clear(session, device.id, "offline", None, now)
    return raised


def list_alerts(session: Session, admin: AdminIdentity, state: str | None) -> list[Alert]:
    query = select(Alert).where(Alert.enterprise_id == admin.enterprise_id).order_by(Alert.id)
    if state is not None:
        query = query.where(Alert.state == state)
    return list(session.scalars(query))


def transition(
    session: Session, admin: AdminIdentity, alert_id: int, target: str, now: dt.datetime
) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None or alert.enterprise_id != admin.enterprise_id:
        raise NotFound("no such alert", field="alert_id")
    allowed = {"acknowledged": ("active",), "cleared": ("active", "acknowledged")}[target]
    if alert.state not in allowed:
        raise Conflict(f"alert is {alert.state}; cannot move it to {target}", field="state")
    alert.state = target
    if target == "acknowledged":
        alert.acknowledged_at = now
    else:
        alert.cleared_at = now
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action=f"alert.{target}",
        enterprise_id=admin.enterprise_id,
        target=str(alert.id),
    )
    return alert


def alert_dict(alert: Alert) -> dict[str, object]:
    return {
        "alert_id": alert.id,
        "device_id": alert.device_id,
        "rule": alert.rule,
        "component": alert.component,
        "severity": alert.severity,
        "state": alert.state,
        "raised_at": as_utc(alert.raised_at).isoformat(),
        "acknowledged_at": as_utc(alert.acknowledged_at).isoformat()
        if alert.acknowledged_at
        else None,
        "cleared_at": as_utc(alert.cleared_at).isoformat() if alert.cleared_at else None,
        "detail": alert.detail,
    }
