"""The relay pool of a replicated meeting region: relays, placements and members in PostgreSQL.

It is the `RelayPool` with its shared state moved to `ReplicaStore` (docs/meeting-replicas.md):

- relays are found from their rows (each relay beats its own), not from ready files;
- a conference's relay is its `relay_placements` row, so whichever replica admits a participant
  admits it on the same relay; who is admitted is in `relay_members`;
- every replica watches every relay's heartbeat stream, but when one ends, only the replica whose
  conditional update declares the relay lost moves its conferences (fresh keys, `media.move` to
  each participant wherever its socket is) and starts one replacement, which outlives the replica
  that started it (it carries every replica's conferences). A relay declared lost finds so at its
  next beat and ends, so it never lingers next to its replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import httpx

from protocol.signaling import MediaKeys, MediaMove
from services.meeting.media.pool import RelayPool, relay_failure
from services.meeting.relay.client import RelayControlError
from services.meeting.store.replica_store import Moved, ReplicaStore

log = logging.getLogger("roomtrust.meeting.media")


class SharedRelayPool(RelayPool):
    replacements_outlive_region = True

    def __init__(self, home: Path, region: str, shared: ReplicaStore, **options: Any) -> None:
        super().__init__(home, region, **options)
        self.shared = shared

    async def _discover(self) -> None:
        try:
            relays = await self.shared.live_relays()
        except Exception:
            log.warning("cannot read the region's relays", exc_info=True)
            return
        for relay in relays:
            if relay.name in self.directory.lost or self._watched_pids.get(relay.name) == relay.pid:
                continue
            ready = {
                "name": relay.name,
                "pid": relay.pid,
                "control_url": relay.control_url,
                "ca_file": relay.ca_file,
            }
            self._start_watch(relay.name, relay.pid, ready)

    # -- the media-key hook ------------------------------------------------------------------

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        async with self._conference(conference_id):
            for _ in range(3):
                name = await self.shared.place(conference_id, sorted(self.directory.live))
                control = None if name is None else self._controls.get(name)
                if name is None or control is None:
                    log.warning("no live relay in %s for %s", self.region, conference_id)
                    return None
                try:
                    grant = await control.add_participant(participant_id, conference_id)
                except (httpx.HTTPError, RelayControlError) as exc:
                    log.warning("relay %s refused an admission: %s", name, exc)
                    if not relay_failure(exc):
                        return None
                    await self._lost(name)
                    continue
                await self.shared.joined(conference_id, participant_id)
                return grant
        return None

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        async with self._conference(conference_id):
            placed = await self.shared.placement(conference_id)
            was, remaining = await self.shared.left(conference_id, participant_id)
            if not was or placed is None:
                return
            control = self._controls.get(placed[0])
            if control is None:
                return
            try:
                await control.remove_participant(participant_id)
                if not (rekey and remaining):
                    return
                grants = await control.rekey_conference(conference_id)
            except (httpx.HTTPError, RelayControlError) as exc:
                log.warning("relay %s: withdraw failed: %s", placed[0], exc)
                return
            for pid, grant in grants.items():
                await self._tell(pid, MediaKeys(pid, grant, rekey=True).encode())

    async def refresh(self, conference_id: str, relay: str) -> None:
        async with self._conference(conference_id):
            placed = await self.shared.placement(conference_id)
            if placed is None or placed[0] == relay:
                return
            await self._rekey(placed[0], conference_id)

    # -- losing a relay ----------------------------------------------------------------------

    def _relay_failed(self, name: str) -> None:
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
        self._spawn_task(self._lost(name))

    async def _lost(self, name: str) -> None:
        if name in self.directory.lost:
            return
        self.directory.live.discard(name)
        self.directory.lost.add(name)
        control = self._controls.pop(name, None)
        if control is not None:
            self._spawn_task(control.aclose())
        if not await self.shared.mark_lost(name):
            log.info("relay %s lost; another replica moves its conferences", name)
            return
        moves = await self.shared.move_off(name, sorted(self.directory.live))
        if moves:
            self.failovers += 1
            log.warning("relay %s lost: moving %d conference(s)", name, len(moves))
        if self.replace:
            self._spawn_task(self._replace(name))
        await asyncio.gather(*(self._move_shared(move) for move in moves))

    async def _move_shared(self, move: Moved) -> None:
        async with self._conference(move.conference_id):
            control = self._controls.get(move.target)
            if control is None:
                return
            results = await asyncio.gather(
                *(control.add_participant(pid, move.conference_id) for pid in move.participants),
                return_exceptions=True,
            )
        failed = False
        for pid, result in zip(move.participants, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or relay_failure(result)
                continue
            with contextlib.suppress(Exception):
                await self._tell(pid, MediaMove(pid, result).encode())
        if failed:
            self._relay_failed(move.target)
