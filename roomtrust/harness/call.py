"""One participant of a live call over asyncio: WSS signaling plus SRTP media on a UDP socket.

`MediaCall` wraps a signaling socket (`protocol.meeting_client.Signal`) and a `MediaEndpoint`. It
reads every signaling message in the background, applies `media.keys` and `media.move` at once (so
a relay failover needs nothing from the caller), and keeps the rest for `expect`. Media goes out
from one local UDP socket to whatever relay the latest grant names: the participant never tells
anyone its port and never listens for strangers (MT-12). An audio sender paces 20 ms frames on the
event loop clock. With a resumable signaling client (`Signal(..., resumable=True)`) the call asks for
a resume token when it joins, and the client resumes its place on a new socket when the old one
drops (`protocol.signaling_client`), while the media keeps flowing on the same keys. Used by the
tests, the features and the failover benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from media_core.endpoint import MediaEndpoint
from media_core.rtp import RtpPacket
from media_core.sources import AudioSource
from protocol.meeting_client import Signal
from protocol.signaling import MessageType


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    packet: RtpPacket


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, call: MediaCall) -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.call._datagram((addr[0], addr[1]), data)


class MediaCall:
    def __init__(self, signal: Signal, *, jitter_delay: float | None = None) -> None:
        self.signal = signal
        self.endpoint = MediaEndpoint(jitter_delay)
        self.arrivals: list[Arrival] = []
        self.key_events: list[tuple[float, str]] = []  # (time, "keys" | "rekey" | "move")
        self.participant_id: str | None = None
        self.source: AudioSource | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._seen = 0
        self._news = asyncio.Event()
        self._keys = asyncio.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def open(self) -> MediaCall:
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self._reader = asyncio.create_task(self._read())
        return self

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        for task in (self._sender, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._transport is not None:
            self._transport.close()

    # -- signaling ---------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        await self.signal.send(message)

    async def _read(self) -> None:
        while True:
            message = await self.signal.next(timeout=3600)
            if message is None:
                self._news.set()
                return
            if message.get("type") in (MessageType.ADMITTED, MessageType.LOBBY_WAITING):
                self.participant_id = str(message.get("participant_id"))
            if self.endpoint.handle_message(message):
                kind = "move" if message["type"] == MessageType.MEDIA_MOVE else "keys"
                if message.get("rekey"):
                    kind = "rekey"
                self.key_events.append((self.loop.time(), kind))
                self._keys.set()
            self._news.set()

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of this type not yet returned by `expect`."""
        deadline = self.loop.time() + timeout
        while True:
            received = self.signal.received
            while self._seen < len(received):
                message = received[self._seen]
                self._seen += 1
                if message.get("type") == kind:
                    return message
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"signaling closed while waiting for {kind}")
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind} within {timeout} s; got {self.types()}")
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), remaining)

    def types(self) -> list[str]:
        return [str(m.get("type")) for m in self.signal.received]

    async def join(self, conference_id: str, password: str | None = None) -> None:
        message: dict[str, Any] = {"type": MessageType.JOIN, "conference_id": conference_id}
        if password is not None:
            message["password"] = password
        if self.signal.resumable:
            message["resumable"] = True
        await self.send(message)

    async def keys(self, timeout: float = 10.0) -> None:
        """Wait until the first media keys are in."""
        await asyncio.wait_for(self._keys.wait(), timeout)

    # -- media -------------------------------------------------------------------------------

    def send_rtp(self, rtp: bytes) -> bool:
        outbound = self.endpoint.protect(rtp)
        if outbound is None or self._transport is None:
            return False
        self._transport.sendto(outbound.data, outbound.address)
        return True

    def start_audio(self, source: AudioSource, frames: int | None = None) -> None:
        """Send `source` frames every 20 ms (forever, or `frames` of them) from now on."""
        self.source = source
        self._sender = asyncio.create_task(self._send_audio(source, frames))

    async def stop_audio(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None

    async def _send_audio(self, source: AudioSource, frames: int | None) -> None:
        start = self.loop.time()
        sent = 0
        while frames is None or sent < frames:
            for packet in source.next_frame():
                self.send_rtp(packet.build())
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * source.frame_interval - self.loop.time()))

    def _datagram(self, address: tuple[str, int], data: bytes) -> None:
        now = self.loop.time()
        packet = self.endpoint.datagram_received(address, data, now)
        if packet is not None:
            self.arrivals.append(Arrival(now, packet))

    def from_source(self, ssrc: int) -> list[Arrival]:
        return [a for a in self.arrivals if a.packet.ssrc == ssrc]
