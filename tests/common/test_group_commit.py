"""Group commit: many jobs, one transaction, answers only after commit; a refused job leaves
nothing behind and does not spoil its batch."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.db import make_engine, session_factory, sqlite_url
from services.common.group_commit import GroupCommitter


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[str]


def test_batches_commit_and_refusals_stay_out(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "gc.sqlite3"))
    Base.metadata.create_all(engine)
    committer = GroupCommitter(session_factory(engine), max_batch=64)

    def job(i: int):  # type: ignore[no-untyped-def]
        def run(session: Session) -> int:
            if i % 10 == 0:
                raise ValueError(f"refused {i}")
            session.add(Row(value=str(i)))
            return i

        return run

    futures: list[Future[int]] = [committer.submit(job(i)) for i in range(500)]
    results = []
    for i, future in enumerate(futures):
        if i % 10 == 0:
            with pytest.raises(ValueError):
                future.result(timeout=10)
        else:
            results.append(future.result(timeout=10))
    committer.close()
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT value FROM rows")).scalars())
    assert stored == {str(i) for i in results}
    assert len(stored) == 450
    assert committer.batches < 500
