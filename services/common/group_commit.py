"""Group commit: many small writes share one transaction, and each caller is answered only after
that transaction is durably committed.

Request handlers submit jobs (`fn(session) -> result`); one writer thread takes whatever jobs are
waiting, runs them in a single transaction and commits once. Each job runs in a SAVEPOINT of its
own: a job that raises is rolled back to it (its rows, its row locks and what it noted in
`session.info` go), and the rest of the batch still commits.

Replicas of a region write to one PostgreSQL database, so a batch can be chosen as the victim of a
deadlock (SQLSTATE 40P01) or fail to serialize (40001). Then the whole batch is rolled back, so the
other transaction proceeds, and run again, up to `TRANSIENT_ATTEMPTS` times. If it still fails, or
the commit itself fails, every job of the batch gets the error: nothing is acknowledged that is not
stored, and a job is acknowledged only by the one attempt that committed it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from services.common.db import is_transient

T = TypeVar("T")
Job = Callable[[Session], Any]
log = logging.getLogger("roomtrust.group_commit")
TRANSIENT_ATTEMPTS = 8
RETRY_PAUSE_SECONDS = 0.01  # doubled each attempt: the other transaction gets to finish


def _snapshot(info: dict[Any, Any]) -> dict[Any, Any]:
    """A copy of `session.info` deep enough to undo a job's additions to its sets and dicts."""
    return {k: v.copy() if isinstance(v, set | dict | list) else v for k, v in info.items()}


class GroupCommitter:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 256) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()
        self.batches = 0
        self.jobs_done = 0
        self.retries = 0  # batches run again after a deadlock or a serialization failure

    def submit(self, job: Callable[[Session], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    async def run(self, job: Callable[[Session], T]) -> T:
        return await asyncio.wrap_future(self.submit(job))

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._commit(batch)
                    return
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        attempt = 1
        while True:
            try:
                results = self._attempt(batch)
                break
            except Exception as exc:
                if is_transient(exc) and attempt < TRANSIENT_ATTEMPTS:
                    log.info("batch of %d rolled back (%s); again", len(batch), exc.__class__)
                    self.retries += 1
                    time.sleep(RETRY_PAUSE_SECONDS * 2 ** (attempt - 1))
                    attempt += 1
                    continue
                for _job, future in batch:
                    future.set_exception(exc)
                return
        self.batches += 1
        self.jobs_done += len(batch)
        for future, result, error in results:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _attempt(
        self, batch: list[tuple[Job, Future[Any]]]
    ) -> list[tuple[Future[Any], Any, BaseException | None]]:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        with self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "sqlite":
                # pysqlite begins only before a write, so the first SAVEPOINT would start (and its
                # RELEASE commit) a transaction of its own: begin the batch's, as its writer.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            for job, future in batch:
                saved = _snapshot(session.info)
                try:
                    with session.begin_nested():
                        result = job(session)
                except Exception as exc:
                    if is_transient(exc):
                        raise  # the batch is rolled back and run again
                    session.info.clear()  # the job's own refusal: it leaves nothing behind
                    session.info.update(saved)
                    results.append((future, None, exc))
                else:
                    results.append((future, result, None))
        return results
