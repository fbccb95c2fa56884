"""Getting queued commands to devices over their command channels, and the rollout engine's work,
whose commands go out as soon as the work is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from services.dm.api.state import DmState
from services.dm.domain import commands

T = TypeVar("T")


async def deliver(state: DmState, device_ids: list[str]) -> int:
    """Send pending commands to those of the devices that are connected now (one read and one
    write for the whole batch); returns to how many devices something was sent."""
    online = [d for d in dict.fromkeys(device_ids) if state.hub.connected(d)]
    if not online:
        return 0
    pending = await state.in_tx(
        lambda s: {
            device_id: [commands.as_message(c) for c in rows]
            for device_id, rows in commands.pending_for(s, online).items()
        }
    )
    results = await asyncio.gather(*(state.hub.send(d, pending[d]) for d in online))
    sent = [
        m["command_id"] for d, ok in zip(online, results, strict=True) if ok for m in pending[d]
    ]
    if sent:
        now = state.now()
        await state.commit(lambda s: commands.mark_delivered(s, sent, now))
    return sum(results)


async def push_pending(state: DmState, device_id: str) -> int:
    """Send a device that just connected everything still pending for it."""
    pending = await state.in_tx(
        lambda s: [commands.as_message(c) for c in commands.pending(s, device_id)]
    )
    if await state.hub.send(device_id, pending):
        now = state.now()
        ids = [m["command_id"] for m in pending]
        await state.commit(lambda s: commands.mark_delivered(s, ids, now))
        return 1
    return 0


async def in_engine(state: DmState, fn: Callable[[Session], T]) -> T:
    """Run rollout-engine work on the group committer's writer thread (many device reports
    share one commit); once committed, deliver the commands it queued."""
    result, notify = await state.commit(state.engine.job(fn))
    await deliver(state, notify)
    return result
