"""What every part of the DM API shares, in one typed object kept on `app.state.dm`.

The group committer exists only while the app runs (the lifespan in `background.py` opens and
closes it); everything else is made once, when the app is built.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from services.common.db import transaction
from services.common.group_commit import GroupCommitter
from services.common.runtime import RegionRuntime
from services.dm.api.command_hub import CommandHub
from services.dm.domain import diagnostics, images
from services.dm.domain.rollouts import RolloutEngine
from services.dm.store import signals

if TYPE_CHECKING:
    from services.dm.api.fanout import Fanout
    from services.dm.api.lease import Lease

T = TypeVar("T")


@dataclass
class DmState:
    runtime: RegionRuntime
    hub: CommandHub
    engine: RolloutEngine
    diagnostic_blobs: diagnostics.BlobStore
    firmware_blobs: images.BlobStore
    release_key: Ed25519PrivateKey
    offline_after: dt.timedelta
    committer: GroupCommitter | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # work nobody waits for
    fanout: Fanout | None = None  # PostgreSQL: what the other replicas commit reaches this one
    lease: Lease | None = None  # PostgreSQL: the leader lease (None: the one process leads)

    @classmethod
    def open(cls, runtime: RegionRuntime) -> DmState:
        signals.install(runtime.sessions)
        return cls(
            runtime=runtime,
            hub=CommandHub(),
            engine=RolloutEngine(runtime.sessions, runtime.region),
            diagnostic_blobs=runtime.blob_store("diagnostics"),
            firmware_blobs=runtime.blob_store("firmware"),
            release_key=runtime.release_key(),
            offline_after=dt.timedelta(minutes=runtime.settings.offline_alert_minutes),
        )

    @property
    def certificate_lifetime(self) -> dt.timedelta:
        """How long a device certificate issued now lasts (`device_certificate_days`)."""
        return dt.timedelta(days=self.runtime.settings.device_certificate_days)

    @property
    def region(self) -> str:
        return self.runtime.region

    @property
    def leader(self) -> bool:
        """Whether this process runs the region's periodic jobs."""
        return self.lease is None or self.lease.held

    def now(self) -> dt.datetime:
        return self.runtime.clock.now()

    def in_tx_sync(self, fn: Callable[[Session], T]) -> T:
        """`fn` in a transaction of its own, on this thread."""
        with transaction(self.runtime.sessions) as session:
            return fn(session)

    async def in_tx(self, fn: Callable[[Session], T]) -> T:
        """`fn` in a transaction of its own, on a worker thread."""
        return await run_in_threadpool(self.in_tx_sync, fn)

    async def commit(self, fn: Callable[[Session], T]) -> T:
        """`fn` as a job of the group committer: answered once its batch is committed."""
        if self.committer is None:
            raise RuntimeError("the DM app is not running: its group committer is closed")
        return await self.committer.run(fn)
