"""The operation log: who did what, to what, and when, for every administrative action (MT-19).

Each service declares its own table from `OperationLogMixin` in its own metadata; `record()` writes
an entry inside the caller's transaction, so an action and its log line commit together.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column


class OperationLogMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text, default="{}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": json.loads(self.detail),
        }


def record(
    session: Session,
    model: type[OperationLogMixin],
    /,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    enterprise_id: str | None = None,
    target: str | None = None,
    **detail: Any,
) -> None:
    entry = model()
    entry.at = at
    entry.enterprise_id = enterprise_id
    entry.actor = actor
    entry.action = action
    entry.target = target
    entry.detail = json.dumps(detail, default=str, sort_keys=True)
    session.add(entry)
