"""Getting queued commands to devices over their command channels, and the rollout engine's work,
whose commands go out as soon as the work is committed.

A command is sent by the replica that holds the device's channel: the one that queued it, at once
(`deliver`), or another one, when the commit's signal reaches it (`services.dm.api.fanout`). Each
claims the commands it sends (`commands.claim_undelivered`), so a command is sent once however
many replicas hear of it; a device that reconnects is sent everything not acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from services.dm.api.state import DmState
from services.dm.domain import commands

T = TypeVar("T")


async def deliver(state: DmState, device_ids: list[str]) -> int:
    """Send the never-sent commands of those of the devices connected here (one write for the
    whole batch); returns to how many devices something was sent."""
    online = [d for d in dict.fromkeys(device_ids) if state.hub.connected(d)]
    if not online:
        return 0
    now = state.now()

    def claim(s: Session) -> dict[str, list[dict[str, Any]]]:
        claimed = commands.claim_undelivered(s, online, now)
        return {d: [commands.as_message(c) for c in rows] for d, rows in claimed.items()}

    pending = await state.commit(claim)
    results = await asyncio.gather(*(state.hub.send(d, m) for d, m in pending.items()))
    return sum(results)


async def push_pending(state: DmState, device_id: str) -> int:
    """Send a device that just connected everything it has not acknowledged. The never-sent ones
    are claimed first, so neither the sweep nor a signal sends them a second time."""
    now = state.now()

    def claim(s: Session) -> list[dict[str, Any]]:
        commands.claim_undelivered(s, [device_id], now)
        return [commands.as_message(c) for c in commands.pending(s, device_id)]

    pending = await state.commit(claim)
    return 1 if await state.hub.send(device_id, pending) else 0


async def in_engine(state: DmState, fn: Callable[[Session], T]) -> T:
    """Run rollout-engine work on the group committer's writer thread (many device reports
    share one commit); once committed, deliver the commands it queued."""
    result, notify = await state.commit(state.engine.job(fn))
    await deliver(state, notify)
    return result
