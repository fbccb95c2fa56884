"""Commands and revocations reach a device whichever replica holds its channel (PostgreSQL only).

Each replica listens on its region's channel (`store.signals`). A commit that queued commands or
revoked a device notifies the device's id; the listener batches what it hears and, for the devices
whose channel this replica's hub holds, sends their undelivered commands (claimed, so they go out
once) or closes their channel. A listener misses what is notified while it reconnects, so a sweep
looks every `SWEEP_SECONDS`, and at once after each reconnect, for undelivered commands and
revoked devices among the connected ones.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from services.dm.api.delivery import deliver
from services.dm.api.state import DmState
from services.dm.domain import commands
from services.dm.store import signals
from services.dm.store.models import Device

log = logging.getLogger("roomtrust.dm.fanout")
SWEEP_SECONDS = 2.0
RECONNECT_SECONDS = 1.0
REVOKED_REASON = "certificate revoked"


def conninfo(engine: Engine) -> str:
    """A libpq connection string for the database of a SQLAlchemy PostgreSQL engine."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def current_schema(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_schema()")).scalar_one())


@dataclass
class Fanout:
    """The listener, the batcher and the sweep of one replica."""

    state: DmState
    schema: str
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    _commands: set[str] = field(default_factory=set)
    _revoked: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def heard(self, payload: str) -> None:
        decoded = signals.decode(payload)
        if decoded is None:
            return
        signal, device_id = decoded
        if not self.state.hub.connected(device_id):
            return  # another replica holds it (or nobody): nothing to do here
        (self._revoked if signal is signals.Signal.REVOKED else self._commands).add(device_id)
        self._wake.set()

    async def listen(self) -> None:
        """Listen on the region's channel for as long as the app runs, reconnecting."""
        channel = signals.channel(self.schema)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(self.state.runtime.engine), autocommit=True
                ) as conn:
                    await conn.execute(f'LISTEN "{channel}"')
                    self.listening.set()
                    await self.sweep()  # what was notified while nobody listened
                    async for notification in conn.notifies():
                        self.heard(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("command listener lost its connection; reconnecting", exc_info=True)
            self.listening.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def dispatch(self) -> None:
        """Carry out what the listener heard, a batch at a time."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            revoked, self._revoked = self._revoked, set()
            pending, self._commands = self._commands, set()
            try:
                for device_id in revoked:
                    await self.state.hub.close_device(device_id, REVOKED_REASON)
                if pending:
                    await deliver(self.state, sorted(pending - revoked))
            except Exception:
                log.exception("delivering signalled commands failed")

    async def sweep(self) -> None:
        """Close revoked devices' channels and send never-sent commands, of the devices whose
        channel this replica holds."""
        online = self.state.hub.device_ids()
        if not online:
            return

        def look(s: Session) -> tuple[list[str], list[str]]:
            revoked = list(
                s.scalars(select(Device.id).where(Device.id.in_(online), Device.state == "revoked"))
            )
            return revoked, commands.undelivered_devices(s, online)

        revoked, undelivered = await self.state.in_tx(look)
        for device_id in revoked:
            await self.state.hub.close_device(device_id, REVOKED_REASON)
        if undelivered:
            await deliver(self.state, [d for d in undelivered if d not in revoked])

    async def sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("command sweep failed")
