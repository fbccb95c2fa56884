"""One meeting client in the asyncio driver: REST with httpx, signaling over WSS with `websockets`.

Users authenticate with a bearer token through a client shared per region; a room system presents
its own client certificate (registered once with the region's one-time code).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, assert_never
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from devices_virtual.agent.actions import CancelTimer, HttpRequest, StartTimer
from devices_virtual.driver.io import FleetIO
from devices_virtual.driver.keys import DeviceKeys
from devices_virtual.meeting_client import (
    ClientAction,
    ClientEvent,
    CloseSocket,
    HttpAnswer,
    HttpFailed,
    MeetingClient,
    OpenSocket,
    SendSocket,
    Show,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    StoreRoomCredential,
    TimerDue,
)
from protocol.signaling import SignalingClose


def response_body(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


class VirtualMeetingClient:
    def __init__(
        self,
        io: FleetIO,
        client: MeetingClient,
        name: str,
        ca_file: Path,
        keys: DeviceKeys | None = None,
    ) -> None:
        self.io = io
        self.client = client
        self.name = name
        self.ca_file = ca_file
        self.keys = keys
        self.ctx: ssl.SSLContext | None = None
        self.shown: list[Show] = []
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None
        self._socket: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def feed(self, event: ClientEvent) -> None:
        for action in self.client.handle(event):
            self._do(action)
        self._changed.set()

    async def until(self, ready: Callable[[MeetingClient], bool], timeout: float = 20.0) -> bool:
        """Wait until `ready(client)` holds (re-checked after every event); False on timeout."""

        async def wait() -> None:
            while not ready(self.client):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _do(self, action: ClientAction) -> None:
        io = self.io
        match action:
            case HttpRequest():
                io.spawn(self._request(action))
            case StartTimer():
                old = self.timers.pop(action.name, None)
                if old is not None:
                    old.cancel()
                self.timers[action.name] = io.loop.call_at(
                    io.loop_time(action.at), self._fire, action.name
                )
            case CancelTimer():
                handle = self.timers.pop(action.name, None)
                if handle is not None:
                    handle.cancel()
            case OpenSocket():
                self._socket = io.spawn(self._run_socket(action.url, action.token))
            case SendSocket():
                io.spawn(self._send(action.message))
            case CloseSocket():
                io.spawn(self._close(action.code))
            case StoreRoomCredential():
                assert self.keys is not None, "a room system needs its key files"
                self.keys.store(action.certificate_pem, action.ca_pem)
                self.ctx = self.keys.ssl_context(self.ca_file)
            case Show():
                self.shown.append(action)
                io.log({"kind": f"show.{action.kind}", "client": self.name, "text": action.text})
            case _:
                assert_never(action)

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.feed(TimerDue(self.io.now(), name))

    async def _request(self, request: HttpRequest) -> None:
        io = self.io
        parts = urlsplit(request.url)
        io.record(
            self.name, parts.hostname or "", parts.port or 443, "https", "meeting", request.purpose
        )
        headers = {"authorization": f"Bearer {request.bearer}"} if request.bearer else {}
        if request.mtls and self.ctx is not None:
            if self._http is None:
                self._http = httpx.AsyncClient(verify=self.ctx, timeout=io.timeout)
            client = self._http
        else:
            client = io.shared_client(f"{parts.scheme}://{parts.netloc}", self.ca_file)
        try:
            response = await client.request(
                request.method, request.url, json=request.json, headers=headers
            )
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            self.feed(HttpFailed(io.now(), request.request_id, f"{type(exc).__name__}: {exc}"))
            return
        body = response_body(response)
        self.feed(HttpAnswer(io.now(), request.request_id, response.status_code, body))

    async def _run_socket(self, url: str, token: str | None) -> None:
        io = self.io
        parts = urlsplit(url)
        io.record(self.name, parts.hostname or "", parts.port or 443, "wss", "meeting", "signaling")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ctx = (
            self.ctx if token is None and self.ctx is not None else io.verify_context(self.ca_file)
        )
        code = 1006
        try:
            async with connect(
                url,
                ssl=ctx,
                additional_headers=headers,
                compression=None,
                ping_interval=None,
                open_timeout=io.timeout,
                close_timeout=2,
            ) as ws:
                self._ws = ws
                self.feed(SocketOpened(io.now()))
                async for raw in ws:
                    with contextlib.suppress(ValueError):
                        message = json.loads(raw)
                        if isinstance(message, dict):
                            self.feed(SocketMessage(io.now(), message))
            code = ws.close_code or 1000
        except InvalidStatus as exc:
            code = (
                SignalingClose.UNAUTHENTICATED
                if exc.response.status_code == 401
                else SignalingClose.FORBIDDEN
            )
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
        except (WebSocketException, OSError, TimeoutError, ssl.SSLError):
            code = 1006
        finally:
            self._ws = None
        self.feed(SocketClosed(io.now(), code))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(message))

    async def _close(self, code: int) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.close(code)

    async def shutdown(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        socket, self._socket = self._socket, None
        if socket is not None and not socket.done():
            socket.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await socket
        if self._http is not None:
            await self._http.aclose()
