"""Device-row writes of device reports (last seen, reported status and fields), made at the end of
the transaction in device-id order.

A replica's group commit runs many device reports in one transaction, and the replicas of a
region share the devices' rows: a device's telemetry may reach one replica while its command
channel (its acknowledgements, the rollout's steps) is on another. Were each report to update its
device's row at once, two replicas' batches would lock the same rows in different orders, and
hold them while waiting for a rollout's row lock: a deadlock. So a report notes its device's new
values (`touch`, which also shows them on the loaded object at once) and the transaction writes
them just before it commits, one device after the other in id order, after every other lock it
takes. Two batches then lock devices' rows in one order, and never hold one while waiting for
anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value

from services.dm.store.models import Device

_PENDING = "roomtrust_dm_device_touches"


def touch(session: Session, device: Device, values: Mapping[str, Any]) -> None:
    """Set these columns of the device's row when the transaction commits (the loaded object
    shows them now)."""
    for name, value in values.items():
        set_committed_value(device, name, value)
    pending: dict[str, dict[str, Any]] = session.info.setdefault(_PENDING, {})
    pending.setdefault(device.id, {}).update(values)


def _write_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a job's savepoint: the batch's transaction writes them all at its end
    pending: dict[str, dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    for device_id in sorted(pending):
        session.execute(
            update(Device)
            .where(Device.id == device_id)
            .values(pending[device_id])
            .execution_options(synchronize_session=False)
        )


def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        session.info.pop(_PENDING, None)


# Every session: a touch must never be lost because some code path opened its session elsewhere.
event.listen(Session, "before_commit", _write_before_commit)
event.listen(Session, "after_soft_rollback", _forget_after_rollback)
