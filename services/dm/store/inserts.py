"""`INSERT ... ON CONFLICT DO NOTHING` on either database: the write that a unique constraint
makes idempotent, with no read before it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.dm.store.models import Base


def insert_new(session: Session, model: type[Base], values: Mapping[str, Any]) -> int | None:
    """Insert one row unless it would break a unique constraint; the new row's id, or None when
    an equal row exists (committed, or in a transaction this one then waits for)."""
    session.flush()  # the rows it refers to first
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    assert isinstance(table, Table)
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    new_id = session.execute(statement).scalar_one_or_none()
    return None if new_id is None else int(new_id)
