"""Read queries the API needs that belong to no domain rule: counts and the operation log page."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.dm.store.models import Device, OperationLogEntry


def device_count(session: Session) -> int:
    """How many devices the region holds, whatever their enterprise or state."""
    return session.scalar(select(func.count()).select_from(Device)) or 0


def operation_log(
    session: Session, enterprise_id: str, limit: int, action: str | None = None
) -> list[OperationLogEntry]:
    """The newest `limit` entries of one enterprise's operation log (of one action, if given),
    newest first."""
    query = select(OperationLogEntry).where(OperationLogEntry.enterprise_id == enterprise_id)
    if action is not None:
        query = query.where(OperationLogEntry.action == action)
    return list(session.scalars(query.order_by(OperationLogEntry.id.desc()).limit(limit)))
