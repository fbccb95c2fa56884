"""Group commit: many jobs, one transaction, answers only after commit; a refused job leaves
nothing behind and does not spoil its batch."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from roomtrust.container_host import fresh_database, postgres_missing
from services.common.db import is_transient, make_engine, session_factory, sqlite_url
from services.common.group_commit import TRANSIENT_ATTEMPTS, GroupCommitter


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


def _refusing_after_a_write(i: int):  # type: ignore[no-untyped-def]
    def run(session: Session) -> int:
        session.add(Row(value=str(i)))
        session.flush()  # the row is written, then the job refuses: its SAVEPOINT takes it back
        if i % 3 == 0:
            raise ValueError(f"refused {i} after writing")
        return i

    return run


def test_a_job_that_refuses_after_writing_leaves_nothing_and_the_batch_commits(
    tmp_path: Path,
) -> None:
    engine = make_engine(sqlite_url(tmp_path / "gc.sqlite3"))
    Base.metadata.create_all(engine)
    committer = GroupCommitter(session_factory(engine), max_batch=64)
    futures = [committer.submit(_refusing_after_a_write(i)) for i in range(60)]
    kept = []
    for i, future in enumerate(futures):
        if i % 3 == 0:
            with pytest.raises(ValueError):
                future.result(timeout=10)
        else:
            kept.append(str(future.result(timeout=10)))
    committer.close()
    with engine.connect() as conn:
        stored = sorted(conn.execute(sa.text("SELECT value FROM rows")).scalars())
    assert stored == sorted(kept) and len(stored) == 40  # the others' rows: all there


@pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing()))
@pytest.mark.parametrize("attempts", [TRANSIENT_ATTEMPTS, 1])
def test_a_batch_chosen_as_a_deadlock_victim_runs_again_and_commits_once(
    attempts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job locks row 1 and waits for row 2, which another transaction holds while it waits for
    row 1. The job's transaction detects the deadlock first (its deadlock_timeout is shorter), so
    its batch is the victim: rolled back and run again, it commits once. With one attempt only
    (the negative control) the job gets the deadlock error and changes nothing."""
    monkeypatch.setattr("services.common.group_commit.TRANSIENT_ATTEMPTS", attempts)
    with fresh_database() as database:
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        engine = make_engine(url, "gc")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE counters (id int PRIMARY KEY, value int)"))
            conn.execute(sa.text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
        row_one_locked = threading.Event()
        runs = []

        def job(session: Session) -> int:
            runs.append(1)
            session.execute(sa.text("SET LOCAL deadlock_timeout = '50ms'"))
            session.execute(sa.text("UPDATE counters SET value = value + 1 WHERE id = 1"))
            row_one_locked.set()
            session.execute(sa.text("UPDATE counters SET value = value + 1 WHERE id = 2"))
            return len(runs)

        committer = GroupCommitter(session_factory(engine))
        try:
            with engine.connect() as other:
                other.execute(sa.text("SET LOCAL deadlock_timeout = '5s'"))
                other.execute(sa.text("UPDATE counters SET value = value + 10 WHERE id = 2"))
                future = committer.submit(job)
                assert row_one_locked.wait(10)
                other.execute(sa.text("UPDATE counters SET value = value + 10 WHERE id = 1"))
                other.commit()
            if attempts == 1:
                with pytest.raises(Exception) as refused:
                    future.result(timeout=30)
                assert is_transient(refused.value)
            else:
                assert future.result(timeout=30) == 2  # the second run committed
        finally:
            committer.close()
        with engine.connect() as conn:
            values = dict(conn.execute(sa.text("SELECT id, value FROM counters")).tuples().all())
        engine.dispose()
    if attempts == 1:
        assert values == {1: 10, 2: 10} and committer.retries == 0
    else:
        assert values == {1: 11, 2: 11} and committer.retries == 1
