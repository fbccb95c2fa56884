"""Signals to the region's other replicas, sent by PostgreSQL when the transaction commits.

A transaction that queues a command for a device, or revokes one, names the device here; just
before it commits, one `NOTIFY` per device goes to the region's channel (`roomtrust_dm_<schema>`),
so every replica listening (`services.dm.api.fanout`) hears of it once the rows are visible, and
never of work that was rolled back. On SQLite (one process) nothing is sent: the process that
did the work delivers it itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

CHANNEL_PREFIX = "roomtrust_dm_"
_PENDING = "roomtrust_dm_signals"


class Signal(StrEnum):
    COMMANDS = "commands"  # the device has new commands
    REVOKED = "revoked"  # the device was un-deployed: close its channel


def channel(schema: str) -> str:
    """The NOTIFY channel of the region whose store is `schema`."""
    return f"{CHANNEL_PREFIX}{schema}"


def encode(signal: Signal, device_id: str) -> str:
    return f"{signal.value}:{device_id}"


def decode(payload: str) -> tuple[Signal, str] | None:
    """(signal, device id) of a notification's payload, or None for one this version does not
    know (sent by a newer replica)."""
    kind, _, device_id = payload.partition(":")
    try:
        return Signal(kind), device_id
    except ValueError:
        return None


def send(session: Session, signal: Signal, device_id: str) -> None:
    """Tell the other replicas about `device_id` when this session's transaction commits."""
    session.info.setdefault(_PENDING, set()).add(encode(signal, device_id))


def _notify_before_commit(session: Session) -> None:
    pending: set[str] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    session.execute(
        text(
            "SELECT pg_notify(:prefix || current_schema(), payload)"
            " FROM unnest(CAST(:payloads AS text[])) AS payload"
        ),
        {"prefix": CHANNEL_PREFIX, "payloads": sorted(pending)},
    )


def _forget_after_rollback(session: Session, *_args: Any) -> None:
    session.info.pop(_PENDING, None)


def install(sessions: sessionmaker[Session]) -> None:
    """Send the signals of every transaction of `sessions` (idempotent)."""
    if not event.contains(sessions, "before_commit", _notify_before_commit):
        event.listen(sessions, "before_commit", _notify_before_commit)
        event.listen(sessions, "after_soft_rollback", _forget_after_rollback)
