"""Group commit: many small writes share one transaction, and each caller is answered only after
that transaction is durably committed.

Request handlers submit jobs (`fn(session) -> result`); one writer thread takes whatever jobs are
waiting, runs them in a single transaction and commits once. A job must do its checks before it
changes anything, so a job that raises leaves nothing behind and the rest of the batch still
commits. If the commit itself fails, every job of the batch gets the error: nothing is acknowledged
that is not stored.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
Job = Callable[[Session], Any]


class GroupCommitter:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 256) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()
        self.batches = 0
        self.jobs_done = 0

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
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with self._sessions() as session, session.begin():
                for job, future in batch:
                    try:
                        results.append((future, job(session), None))
                    except Exception as exc:  # the job's own refusal: it changed nothing
                        results.append((future, None, exc))
                    session.flush()
        except Exception as exc:
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
