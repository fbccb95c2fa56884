"""The region's relay pool: media keys for signaling, relay heartbeats, failover and replacement.

`RelayPool` is the `MediaKeyHook` of a meeting region (services/meeting/main.py wires it):

- `issue` admits a participant on its conference's relay through the relay control API and returns
  the grant (keys and relay address) that signaling hands over the WSS socket, after admission only.
- `withdraw` removes a participant from the relay and, when others remain, re-keys the conference
  and sends each remaining participant its new keys (`media.keys` with `"rekey": true`), so the
  removed participant's old keys open nothing sent afterwards.
- `run` is the supervisor. It finds the region's relays from their ready files and keeps one
  heartbeat stream open to each (`GET /v1/heartbeat`, a line a second). A stream that breaks or
  goes quiet for `heartbeat_timeout` means the relay is gone (one that still runs, hung, is
  terminated so it cannot linger next to its replacement): its conferences are planned onto
  another live relay (`services.meeting.domain.media`), each participant is admitted there with
  fresh keys and told by a `media.move` message, without leaving the conference. After
  `replace_delay` seconds the pool starts a replacement relay process (in the cloud, the service's
  desired count does this).

Keys pass through this module only in memory; they are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from protocol.signaling import MediaKeys, MediaMove
from protocol.tls import client_context
from services.meeting.domain.media import Move, RelayDirectory
from services.meeting.relay.client import RelayControl, RelayControlError
from services.meeting.relay.files import control_token, running_relays

log = logging.getLogger("roomtrust.meeting.media")

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]
REPLACE_DELAY_ENV = "ROOMTRUST_RELAY_REPLACE_DELAY"
DEFAULT_REPLACE_DELAY = 1.0
SCAN_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 5.0


class RelayPool:
    # A replacement relay ends with the region process that started it; in a replicated region it
    # carries conferences of every replica, so it must outlive the one that happened to start it.
    replacements_outlive_region = False

    def __init__(
        self,
        home: Path,
        region: str,
        *,
        replace_delay: float | None = None,
        scan_interval: float = SCAN_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        replace: bool = True,
    ) -> None:
        self.home = home
        self.region = region
        if replace_delay is None:
            replace_delay = float(os.environ.get(REPLACE_DELAY_ENV, DEFAULT_REPLACE_DELAY))
        self.replace_delay = replace_delay
        self.scan_interval = scan_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.replace = replace
        self.directory = RelayDirectory()
        self.notify: Notify | None = None
        self.failovers = 0
        self.replacements = 0
        self._controls: dict[str, RelayControl] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._watched_pids: dict[str, int] = {}
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._children: list[subprocess.Popen[bytes]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # -- the media-key hook ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _conference(self, conference_id: str) -> AsyncIterator[None]:
        """One change at a time per conference; the lock goes once nobody holds or awaits it."""
        lock, users = self._locks.setdefault(conference_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[conference_id]

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        async with self._conference(conference_id):
            for _ in range(3):
                name = self.directory.place(conference_id)
                if name is None:
                    log.warning("no live relay in %s for %s", self.region, conference_id)
                    return None
                try:
                    grant = await self._controls[name].add_participant(
                        participant_id, conference_id
                    )
                except (httpx.HTTPError, RelayControlError) as exc:
                    log.warning("relay %s refused an admission: %s", name, _reason(exc))
                    self.directory.abandon(conference_id)
                    if not relay_failure(exc):
                        return None
                    self._relay_failed(name)
                    continue
                self.directory.joined(conference_id, participant_id)
                return grant
        return None

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        async with self._conference(conference_id):
            name = self.directory.host(conference_id)
            if participant_id not in self.directory.participants(conference_id):
                return
            remaining = self.directory.left(conference_id, participant_id)
            if name is None or name not in self.directory.live:
                return
            control = self._controls[name]
            try:
                await control.remove_participant(participant_id)
                if not (rekey and remaining):
                    return
                grants = await control.rekey_conference(conference_id)
            except (httpx.HTTPError, RelayControlError) as exc:
                log.warning("relay %s: withdraw failed: %s", name, _reason(exc))
                return
            for pid, grant in grants.items():
                await self._tell(pid, MediaKeys(pid, grant, rekey=True).encode())

    async def refresh(self, conference_id: str, relay: str) -> None:
        """A participant holds a grant for `relay`: when the conference is elsewhere now, re-key
        it there, so everyone (that participant too) gets a grant for its relay."""
        async with self._conference(conference_id):
            host = self.directory.host(conference_id)
            if host is None or host == relay:
                return
            await self._rekey(host, conference_id)

    async def _rekey(self, host: str, conference_id: str) -> None:
        control = self._controls.get(host)
        if control is None:
            return
        try:
            grants = await control.rekey_conference(conference_id)
        except (httpx.HTTPError, RelayControlError) as exc:
            log.warning("relay %s: re-key failed: %s", host, _reason(exc))
            return
        for pid, grant in grants.items():
            await self._tell(pid, MediaKeys(pid, grant, rekey=True).encode())

    async def _tell(self, participant_id: str, message: dict[str, Any]) -> None:
        if self.notify is not None:
            await self.notify(participant_id, {**message, "participant_id": participant_id})

    # -- the supervisor ----------------------------------------------------------------------

    async def run(self, notify: Notify) -> None:
        """Watch the region's relays until cancelled; `notify` sends a participant a message."""
        self.notify = notify
        try:
            while True:
                await self._discover()
                self._reap()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.scan_interval)
                self._changed.clear()
        finally:
            for child in self._children:  # replacements end with the region that started them
                if child.poll() is None:
                    child.terminate()
            for task in [*self._watchers.values(), *self._tasks]:
                task.cancel()
            for control in self._controls.values():
                with contextlib.suppress(Exception):
                    await control.aclose()

    def live_relays(self) -> list[str]:
        return sorted(self.directory.live)

    async def _discover(self) -> None:
        self._scan()

    def _scan(self) -> None:
        for ready in running_relays(self.home, self.region):
            name = str(ready["name"])
            pid = int(ready["pid"])
            if name in self.directory.lost or self._watched_pids.get(name) == pid:
                continue
            self._start_watch(name, pid, ready)

    async def _watch(self, name: str, ready: dict[str, Any]) -> None:
        """Hold the relay's heartbeat stream open; when it ends, the relay is lost."""
        token = control_token(self.home, self.region)
        timeout = httpx.Timeout(5.0, read=self.heartbeat_timeout)
        try:
            async with (
                httpx.AsyncClient(
                    base_url=ready["control_url"],
                    verify=client_context(ready["ca_file"]),
                    headers={"authorization": f"Bearer {token}"},
                    timeout=timeout,
                ) as client,
                client.stream("GET", "/v1/heartbeat") as stream,
            ):
                stream.raise_for_status()
                beats = stream.aiter_raw()
                await anext(beats)
                control = RelayControl(ready["control_url"], ready["ca_file"], token)
                with contextlib.suppress(httpx.HTTPError):
                    await control.health()  # opens the control connection before it is needed
                self._controls[name] = control
                await self._carry_out(self.directory.relay_up(name))
                log.info("relay %s of %s is up", name, self.region)
                async for _ in beats:
                    pass
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, StopAsyncIteration, OSError) as exc:
            log.warning("relay %s heartbeat ended: %s", name, _reason(exc))
        else:
            log.warning("relay %s heartbeat ended", name)
        self._watchers.pop(name, None)
        await self._lost(name)

    def _relay_failed(self, name: str) -> None:
        """A control call to the relay failed: it is lost now; the moves run once locks are free."""
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
        self._spawn_task(self._carry_out(self._mark_lost(name)))

    async def _lost(self, name: str) -> None:
        await self._carry_out(self._mark_lost(name))

    def _start_watch(self, name: str, pid: int, ready: dict[str, Any]) -> None:
        old = self._watchers.pop(name, None)
        if old is not None:
            old.cancel()
        self._watched_pids[name] = pid
        self._watchers[name] = asyncio.create_task(self._watch(name, ready))

    def _mark_lost(self, name: str) -> list[Move]:
        if name in self.directory.lost:
            return []
        known = name in self.directory.live
        moves = self.directory.relay_down(name)
        self._retire(name)
        control = self._controls.pop(name, None)
        if control is not None:
            self._spawn_task(control.aclose())
        if moves:
            self.failovers += 1
            log.warning("relay %s lost: moving %d conference(s)", name, len(moves))
        if known and self.replace:
            self._spawn_task(self._replace(name))
        return moves

    def _retire(self, name: str) -> None:
        """End a lost relay's process if it still runs (hung, or cut off from the region)."""
        pid = self._watched_pids.get(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    async def _carry_out(self, moves: list[Move]) -> None:
        await asyncio.gather(*(self._move(move) for move in moves if move.target is not None))

    async def _move(self, move: Move) -> None:
        async with self._conference(move.conference_id):
            target = move.target
            if target is None or self.directory.host(move.conference_id) != target:
                return  # planned again meanwhile
            control = self._controls.get(target)
            participants = self.directory.participants(move.conference_id)
            if control is None:
                return
            results = await asyncio.gather(
                *(control.add_participant(pid, move.conference_id) for pid in participants),
                return_exceptions=True,
            )
        failed = False
        for pid, result in zip(participants, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or relay_failure(result)
                continue
            await self._tell(pid, MediaMove(pid, result).encode())
        if failed:
            self._relay_failed(target)

    async def _replace(self, name: str) -> None:
        await asyncio.sleep(self.replace_delay)
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        parent = () if self.replacements_outlive_region else ("--parent-pid", str(os.getpid()))
        with open(logs / f"relay-{self.region}.log", "ab") as out:
            child = subprocess.Popen(
                [
                    *(sys.executable, "-m", "services.meeting.relay"),
                    *("--region", self.region, "--home", str(self.home)),
                    *parent,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if not self.replacements_outlive_region:
            self._children.append(child)
        self.replacements += 1
        log.warning("relay %s replaced by pid %d", name, child.pid)
        self._changed.set()

    def _reap(self) -> None:
        self._children = [c for c in self._children if c.poll() is None]

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        async def runner() -> None:
            await coro

        task = asyncio.create_task(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def relay_failure(exc: BaseException) -> bool:
    """Whether a failed control call says the relay itself is broken (not just this request)."""
    if isinstance(exc, RelayControlError):
        return exc.status >= 500
    return isinstance(exc, httpx.HTTPError | OSError)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
