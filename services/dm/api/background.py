"""The DM region's background work: the loops that run while the app runs (offline alerts, the
retention purge of diagnostics bundles and telemetry, the rollout engine's clock), the lifespan
that starts and stops them with the group committer, and `spawn` for work a request does not wait for.

On PostgreSQL the region may run as several replicas: the periodic loops run only on the replica
that holds the leader lease (`lease.py`), and every replica listens for the commands and
revocations the others commit (`fanout.py`). On SQLite the one process runs the loops itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import FastAPI

from services.common.db import is_postgres
from services.common.group_commit import GroupCommitter
from services.dm.api.delivery import in_engine
from services.dm.api.fanout import Fanout, conninfo, current_schema
from services.dm.api.lease import Lease
from services.dm.api.state import DmState
from services.dm.domain import alerts, diagnostics, retention

log = logging.getLogger("roomtrust.dm")


async def purge_periodically(state: DmState) -> None:
    """Delete expired diagnostics bundles and telemetry readings, at once and then every
    retention interval."""
    settings = state.runtime.settings
    while True:
        now = state.now()
        try:
            purge = partial(diagnostics.purge_expired, blobs=state.diagnostic_blobs, now=now)
            await state.in_tx(purge)
        except Exception:
            log.exception("diagnostics purge failed")
        try:
            days = settings.dm_telemetry_retention_days
            await state.in_tx(partial(retention.purge_telemetry, now=now, days=days))
        except Exception:
            log.exception("telemetry purge failed")
        await asyncio.sleep(settings.retention_interval_seconds)


async def evaluate_alerts_periodically(state: DmState) -> None:
    """Raise and clear offline alerts against the region's clock."""
    while True:
        await asyncio.sleep(state.runtime.settings.dm_alert_evaluation_seconds)
        try:
            evaluate = partial(alerts.evaluate, now=state.now(), offline_after=state.offline_after)
            await state.in_tx(evaluate)
        except Exception:
            log.exception("alert evaluation failed")


async def tick_rollouts_periodically(state: DmState) -> None:
    """Give the rollout engine the time, so waits and windows end without a request."""
    while True:
        await asyncio.sleep(state.runtime.settings.dm_rollout_tick_seconds)
        try:
            await in_engine(state, partial(state.engine.tick, now=state.now()))
        except Exception:
            log.exception("rollout tick failed")


LOOPS: tuple[Callable[[DmState], Coroutine[Any, Any, None]], ...] = (
    evaluate_alerts_periodically,
    purge_periodically,
    tick_rollouts_periodically,
)


async def lead(state: DmState) -> None:
    """The leader's work: the periodic loops, until cancelled (the lease is lost)."""
    tasks = [asyncio.create_task(loop(state)) for loop in LOOPS]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def replica_tasks(state: DmState) -> list[asyncio.Task[None]]:
    """The background tasks of one process of the region."""
    engine = state.runtime.engine
    if not is_postgres(engine.url.render_as_string()):
        return [asyncio.create_task(loop(state)) for loop in LOOPS]
    schema = current_schema(engine)
    state.fanout = Fanout(state, schema)
    state.lease = Lease(conninfo(engine), schema, state.region, partial(lead, state))
    return [
        asyncio.create_task(state.fanout.listen()),
        asyncio.create_task(state.fanout.dispatch()),
        asyncio.create_task(state.fanout.sweep_periodically()),
        asyncio.create_task(state.lease.run()),
    ]


def lifespan(state: DmState) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: the group committer and the loops, for as long as the app runs."""

    @contextlib.asynccontextmanager
    async def run(_app: FastAPI) -> AsyncIterator[None]:
        state.committer = GroupCommitter(state.runtime.sessions)
        tasks = replica_tasks(state)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            state.committer.close()
            state.committer = None

    return run


def spawn(state: DmState, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` without waiting for it; a failure is logged."""

    def done(task: asyncio.Task[Any]) -> None:
        state.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    task = asyncio.ensure_future(work)
    state.tasks.add(task)
    task.add_done_callback(done)
