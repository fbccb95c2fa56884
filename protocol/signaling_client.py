"""The one asyncio client of the meeting signaling socket (WSS, TLS policy of `protocol.tls`).

    async with SignalingClient(url, ca_file, token=token) as client:   # bearer sign-in
        await client.hello()
        await client.join(conference_id, password)
        async for message in client:                                    # typed messages
            ...

A client made with `resumable=True` asks for a resume token when it joins; when its socket drops
before the conference is over for it, `receive()` opens a new socket to the same URL (through the
region's balancer: any replica), signs in as before and sends `resume`; the next message it returns
is `resumed`, and the call goes on (`resumes` records each drop and recovery, by the loop clock).

A gateway signs in with an `Auth` message instead of a bearer token:
`await client.connect(Auth(gateway_token=..., caller=...))`. `receive()` gives the raw JSON objects
for callers that keep the wire as it came (tests, negative controls); `send_raw()` sends any JSON
object, for tests that check how the server refuses a bad one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from protocol.signaling import (
    TERMINAL,
    Auth,
    Error,
    Hello,
    Join,
    Leave,
    Message,
    MessageType,
    Resume,
    Sender,
    SignalingError,
    decode,
)
from protocol.tls import client_context

log = logging.getLogger("roomtrust.signaling.client")


class SignalingRefused(Exception):
    """The server refused the sign-in (an `error`) or closed the socket before `hello`."""

    def __init__(self, reason: str, error: Error | None = None, close_code: int | None = None):
        super().__init__(reason)
        self.error = error
        self.close_code = close_code


class SignalingClient:
    def __init__(
        self,
        url: str,
        ca_file: Path | str | None = None,
        *,
        token: str | None = None,
        context: ssl.SSLContext | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        resumable: bool = False,
        resume_patience: float = 20.0,
    ) -> None:
        """`url` is the signaling URL (`wss://host:port/v1/signaling`); the server is trusted by
        `context`, or else by a client context of `ca_file`."""
        self.url = url
        self.token = token
        if context is None and url.startswith("wss://"):
            if ca_file is None:
                raise ValueError("a wss:// signaling URL needs the CA file or a TLS context")
            context = client_context(ca_file)
        self.context = context
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.ws: ClientConnection | None = None
        self.close_code: int | None = None
        self.skipped = 0  # messages that did not decode (logged and left out of iteration)
        self.resumable = resumable
        self.resume_patience = resume_patience
        self.resume_token: dict[str, Any] | None = None
        self.resumes: list[tuple[float, float]] = []  # (dropped at, resumed at), loop clock
        self.over = False  # the server ended the conference for this client
        self._auth: Auth | None = None
        self._resuming = False
        # Cleared while a resume is under way: a message sent meanwhile would reach the new socket
        # before `resume`, and the server would rightly refuse it (not in a conference yet).
        self._live = asyncio.Event()
        self._live.set()
        self.relay_name: str | None = None  # of the last media grant received

    # -- the socket ------------------------------------------------------------------------------

    async def connect(self, auth: Auth | None = None) -> SignalingClient:
        """Open the socket (with the bearer token, if any) and send `auth` first when given."""
        self._auth = auth
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.ws = await connect(
            self.url,
            ssl=self.context,
            additional_headers=headers,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
        )
        if auth is not None:
            await self._send_now(auth.encode())
        return self

    async def close(self) -> None:
        self.over = True  # closed on purpose: nothing to resume
        if self.ws is not None:
            await self.ws.close()

    async def __aenter__(self) -> SignalingClient:
        if self.ws is None:
            await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _socket(self) -> ClientConnection:
        if self.ws is None:
            raise RuntimeError("connect first")
        return self.ws

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        await self.send_raw(message.encode())

    async def send_raw(self, data: Mapping[str, Any]) -> None:
        """Send now, or, while the socket is being resumed, once the resume is over."""
        await self._live.wait()
        await self._send_now(data)

    async def _send_now(self, data: Mapping[str, Any]) -> None:
        await self._socket().send(json.dumps(dict(data)))

    async def join(self, conference_id: str, password: str | None = None) -> None:
        await self.send(Join(conference_id, password, resumable=True if self.resumable else None))

    async def leave(self) -> None:
        await self.send(Leave())

    # -- receiving -------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next JSON object as it came, or None once the server closed the socket (then
        `close_code` says how). TimeoutError when nothing came within `timeout`; SignalingError for
        text that is not a JSON object."""
        try:
            raw = await asyncio.wait_for(self._socket().recv(), timeout)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
            return await self._resume()
        try:
            data = json.loads(raw)
        except ValueError:
            raise SignalingError("the server sent text that is not JSON") from None
        if not isinstance(data, dict):
            raise SignalingError("the server sent JSON that is not an object")
        kind = data.get("type")
        if kind == MessageType.RESUME_TOKEN:
            self.resume_token = data
        elif kind in (MessageType.MEDIA_KEYS, MessageType.MEDIA_MOVE):
            relay = data.get("relay")
            self.relay_name = relay if isinstance(relay, str) else self.relay_name
        elif kind in TERMINAL:
            self.over = True
        return data

    async def _resume(self) -> dict[str, Any] | None:
        """After a drop: new sockets until one answers `resumed` (returned), or None when this
        client does not resume, has nothing to resume, or runs out of patience."""
        token = self.resume_token
        if not self.resumable or token is None or self.over or self._resuming:
            return None
        loop = asyncio.get_running_loop()
        dropped = loop.time()
        request = Resume(
            str(token["conference_id"]),
            str(token["participant_id"]),
            str(token["token"]),
            self.relay_name,
        )
        self._resuming = True
        self._live.clear()
        try:
            while loop.time() - dropped < self.resume_patience:
                try:
                    await self.connect(self._auth)
                    await self.hello()
                    await self._send_now(request.encode())
                    while (answer := await self.receive(timeout=5)) is not None:
                        if answer.get("type") == MessageType.RESUMED:
                            self.close_code = None
                            self.resumes.append((dropped, loop.time()))
                            log.info("signaling resumed after %.2f s", loop.time() - dropped)
                            return answer
                        if answer.get("type") == MessageType.ERROR:
                            log.warning("resume refused: %s", answer.get("reason"))
                            return None
                except (OSError, TimeoutError, SignalingRefused, WebSocketException):
                    pass
                if self.ws is not None:
                    with contextlib.suppress(Exception):
                        await self.ws.close()
                await asyncio.sleep(0.1)
            return None
        finally:
            self._resuming = False
            self._live.set()

    async def receive_message(self, timeout: float | None = None) -> Message | None:
        """The next message, typed; None once the socket is closed."""
        data = await self.receive(timeout)
        return None if data is None else decode(data, Sender.SERVER)

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Every message until the server closes the socket; one that does not decode is logged,
        counted in `skipped` and left out."""
        while True:
            try:
                data = await self.receive()
            except SignalingError as exc:
                self._skip(exc)
                continue
            if data is None:
                return
            try:
                yield decode(data, Sender.SERVER)
            except SignalingError as exc:
                self._skip(exc)

    def _skip(self, exc: SignalingError) -> None:
        self.skipped += 1
        log.warning("signaling message skipped: %s", exc)

    async def hello(self, timeout: float = 10.0) -> Hello:
        """Wait for the server's `hello`; SignalingRefused on an error or a close before it."""
        while True:
            message = await self.receive_message(timeout)
            if message is None:
                raise SignalingRefused(
                    f"signaling closed ({self.close_code}) before hello", close_code=self.close_code
                )
            if isinstance(message, Hello):
                return message
            if isinstance(message, Error):
                raise SignalingRefused(message.reason, error=message)
