"""The region's recorder: it joins a recorded conference's relay like a participant and writes the
call's audio into the encrypted recording (MT-16).

Signaling starts a `Recorder` when the session says a recording started (`StartRecording`, which
the session emits only for an admitted participant with the record permission, where the
administrator enabled recording) and stops it before the trailer is written. The recorder asks the
region's media-key hook for keys of its own, as relay participant `rec-<recording id>`: the relay
treats it as one more member of the conference, and no participant's keys ever leave the relay.
Like every participant it only sends outbound: an RTCP receiver report under its send key, at once
and every second, is how the relay learns its address and switches to its re-keyed sessions. Re-keys
and relay moves reach it as the `media.keys` and `media.move` messages a participant gets.

What arrives is unprotected by the `MediaEndpoint` (only from the relay, only if it authenticates),
mixed by `Mixdown` into 16-bit PCM and handed, once a second, to `write` (the conference store,
which encrypts it onto the recording in the conference's region). Video is not kept. Nothing of the
media or the keys is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from media_core.endpoint import GrantError, MediaEndpoint, MediaGrant
from media_core.mixdown import Mixdown
from media_core.rtcp import ReceiverReport

log = logging.getLogger("roomtrust.meeting.recorder")

Write = Callable[[str, bytes], Awaitable[None]]
PARTICIPANT_PREFIX = "rec-"
FLUSH_INTERVAL = 1.0


class KeyHook(Protocol):
    """What the recorder needs of the region's media-key hook (`MediaKeyHook`)."""

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None: ...

    async def withdraw(
        self, conference_id: str, participant_id: str, rekey: bool = True
    ) -> None: ...


def recorder_participant(recording_id: str) -> str:
    """The recorder's participant ID on the relay."""
    return f"{PARTICIPANT_PREFIX}{recording_id}"


def _bind_host(relay_host: str) -> str:
    """Loopback for a relay on loopback (the local stack); otherwise every interface."""
    with contextlib.suppress(ValueError):
        return "127.0.0.1" if ipaddress.ip_address(relay_host).is_loopback else "0.0.0.0"
    return "127.0.0.1" if relay_host == "localhost" else "0.0.0.0"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.recorder.datagram_received((addr[0], addr[1]), data)
        except Exception:
            log.exception("recorder %s could not take a datagram", self.recorder.recording_id)

    def error_received(self, exc: Exception) -> None:
        log.debug("recorder UDP error: %s", exc)


class Recorder:
    def __init__(
        self,
        recording_id: str,
        conference_id: str,
        keys: KeyHook,
        write: Write,
        *,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.recording_id = recording_id
        self.conference_id = conference_id
        self.participant_id = recorder_participant(recording_id)
        self.keys = keys
        self.write = write
        self.flush_interval = flush_interval
        self.endpoint = MediaEndpoint(jitter_delay=None)
        self.mixdown: Mixdown | None = None
        self.ssrc = secrets.randbits(32)
        self.written = 0  # PCM bytes handed to `write`
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._writing = asyncio.Lock()

    async def start(self) -> bool:
        """Get keys and join the relay; False when the region gives none (no relay)."""
        grant = await self.keys.issue(self.conference_id, self.participant_id)
        if grant is None:
            log.warning("recording %s: no relay keys, the call is not recorded", self.recording_id)
            return False
        try:
            self.endpoint.apply(MediaGrant.from_message(grant))
        except GrantError as exc:
            log.warning("recording %s: unusable grant: %s", self.recording_id, exc)
            await self.keys.withdraw(self.conference_id, self.participant_id, rekey=False)
            return False
        assert self.endpoint.relay is not None
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(_bind_host(self.endpoint.relay[0]), 0)
        )
        self._transport = transport
        self.mixdown = Mixdown(loop.time())
        self.report()
        self._task = asyncio.create_task(self._run())
        log.info("recording %s: recorder joined the relay", self.recording_id)
        return True

    def handle(self, message: Mapping[str, object]) -> None:
        """A `media.keys` re-key or a `media.move` for the recorder, from the media-key hook."""
        try:
            changed = self.endpoint.handle_message(message)
        except GrantError as exc:
            log.warning("recording %s: unusable grant: %s", self.recording_id, exc)
            return
        if changed:
            self.report()  # the relay switches to the new keys (or learns our address) now

    def report(self) -> None:
        """An RTCP receiver report to the relay, under our send key."""
        out = self.endpoint.protect(ReceiverReport(self.ssrc).build())
        if out is not None and self._transport is not None:
            self._transport.sendto(out.data, out.address)

    def datagram_received(self, address: tuple[str, int], data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        packet = self.endpoint.datagram_received(address, data, now)
        if packet is not None and self.mixdown is not None:
            self.mixdown.push(packet, now)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.flush_interval)
            if not self._stopping.is_set():
                self.report()
                await self._flush(final=False)

    async def _flush(self, final: bool) -> None:
        async with self._writing:
            if self.mixdown is None:
                return
            pcm = self.mixdown.drain(asyncio.get_running_loop().time(), final=final)
            if not pcm:
                return
            try:
                await self.write(self.recording_id, pcm)
            except Exception:
                log.exception("recording %s: audio could not be stored", self.recording_id)
                return
            self.written += len(pcm)

    async def stop(self) -> None:
        """Write what is buffered, leave the relay and give its keys back."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self._flush(final=True)
        if self._transport is not None:
            self._transport.close()
        with contextlib.suppress(Exception):
            await self.keys.withdraw(self.conference_id, self.participant_id, rekey=False)
        counters = self.mixdown.counters.as_dict() if self.mixdown else {}
        log.info("recording %s: recorder stopped (%s)", self.recording_id, counters)


class Recorders:
    """The recorders running in this signaling process, by recording and by relay participant."""

    def __init__(self, keys: KeyHook, write: Write) -> None:
        self.keys = keys
        self.write = write
        self._running: dict[str, Recorder] = {}

    async def start(self, recording_id: str, conference_id: str) -> Recorder | None:
        if recording_id in self._running:
            return self._running[recording_id]
        recorder = Recorder(recording_id, conference_id, self.keys, self.write)
        self._running[recording_id] = recorder
        try:
            started = await recorder.start()
        except Exception:  # the call goes on unrecorded rather than the session's actions failing
            log.exception("recording %s: the recorder could not start", recording_id)
            started = False
        if not started:
            self._running.pop(recording_id, None)
            return None
        return recorder

    async def stop(self, recording_id: str) -> None:
        recorder = self._running.pop(recording_id, None)
        if recorder is not None:
            await recorder.stop()

    def deliver(self, participant_id: str, message: Mapping[str, object]) -> bool:
        """Hand a recorder its re-key or move; False when no recorder has this participant ID."""
        if not participant_id.startswith(PARTICIPANT_PREFIX):
            return False
        recorder = self._running.get(participant_id.removeprefix(PARTICIPANT_PREFIX))
        if recorder is None:
            return False
        recorder.handle(message)
        return True

    async def close(self) -> None:
        for recording_id in list(self._running):
            await self.stop(recording_id)
