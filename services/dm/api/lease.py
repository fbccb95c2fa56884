"""The leader lease of a replicated DM region: one replica at a time runs the periodic jobs
(rollout ticks, alert rules, purges).

The lease is a PostgreSQL session advisory lock (`pg_try_advisory_lock`) held on a connection of
its own: it lasts as long as that connection, so a replica that dies (even by SIGKILL) frees it
when the server sees the connection close. Every replica polls for it every `POLL_SECONDS`; the
leader checks its connection as often and stops leading when it is gone. The connection's
`application_name` names the process (`roomtrust-dm-<region>-lease-<pid>`), so an operator (or a
test) can see in `pg_stat_activity` which process leads.

On SQLite there is one process, and it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

log = logging.getLogger("roomtrust.dm.lease")
POLL_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5


def lease_key(schema: str) -> int:
    """The advisory lock key of a region's lease: a signed 64-bit number from its schema."""
    digest = hashlib.sha256(f"roomtrust-dm-leader:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def application_name(region: str) -> str:
    return f"roomtrust-dm-{region}-lease-{os.getpid()}"


class Lease:
    """Holds or waits for the lease; `lead()` runs while it is held and is cancelled when lost."""

    def __init__(
        self, conninfo: str, schema: str, region: str, lead: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self._conninfo = conninfo
        self._key = lease_key(schema)
        self._region = region
        self._lead = lead
        self.held = False

    async def run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=application_name(self._region),
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                ) as conn:
                    await self._hold(conn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("leader lease connection lost; trying again", exc_info=True)
            await asyncio.sleep(POLL_SECONDS)

    async def _hold(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while not self.held:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cursor.fetchone()
            if row is not None and row[0] is True:
                break
            await asyncio.sleep(POLL_SECONDS)
        self.held = True
        log.info("this replica leads region %s", self._region)
        leading: asyncio.Task[None] = asyncio.create_task(self._lead())
        try:
            while not leading.done():
                await asyncio.sleep(POLL_SECONDS)
                await conn.execute("SELECT 1")  # raises when the connection (so the lease) is gone
        finally:
            self.held = False
            leading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await leading
            log.info("this replica no longer leads region %s", self._region)
