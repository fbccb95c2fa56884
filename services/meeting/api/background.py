"""The meeting region's background loops, run for the app's lifetime: the retention purge (MT-15)
and, with a supervised media-key hook, the relays' heartbeats and failover (MT-03)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from services.meeting.api.deps import MeetingRegion
from services.meeting.api.media_keys import MediaKeyHook, SupervisedMedia
from services.meeting.domain import retention

log = logging.getLogger("roomtrust.meeting")


def run_retention(region: MeetingRegion) -> retention.RetentionReport:
    runtime = region.runtime
    return region.in_tx(
        lambda s: retention.run(
            s,
            runtime.clock,
            storage=region.storage,
            log_dir=runtime.directory / "logs",
            days=runtime.settings.retention_days,
        )
    )


async def retention_periodically(region: MeetingRegion) -> None:
    while True:
        try:
            report = await run_in_threadpool(run_retention, region)
            if report.enterprises or report.log_files:
                log.info("retention purged %s", report.as_dict())
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(region.runtime.settings.retention_interval_seconds)


def lifespan(
    region: MeetingRegion, media_keys: MediaKeyHook | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def loops(_app: FastAPI) -> AsyncIterator[None]:
        replication = region.signaling.replication
        if replication is not None:  # a replicated region: the bus first, then the leases
            await replication.bus.connect()
        tasks = [asyncio.create_task(retention_periodically(region))]
        if replication is not None:
            tasks.append(asyncio.create_task(region.signaling.run_replication()))
        if isinstance(media_keys, SupervisedMedia):  # relay heartbeats and failover
            tasks.append(asyncio.create_task(media_keys.run(region.signaling.push)))
        log.info("meeting region %s started", region.region)
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # let them clean up
        if replication is not None:
            with contextlib.suppress(Exception):
                await replication.bus.close()

    return loops
