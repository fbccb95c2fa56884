"""One virtual device in the asyncio driver: performs its DeviceAgent's actions for real.

HTTP with httpx (mutual TLS with the device's own certificate towards the DM service), the command
channel over WSS with `websockets`, NTP over UDP, timers on the event loop. Every outbound
connection is recorded before it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from devices_virtual.agent import (
    Action,
    CancelTimer,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    CloseDmSession,
    DeviceAgent,
    Event,
    ForgetCredential,
    HttpRequest,
    HttpResponse,
    ImageInstalled,
    InstallImage,
    NtpQuery,
    NtpReply,
    OpenChannel,
    PowerOn,
    Reboot,
    RequestFailed,
    SendChannel,
    StartTimer,
    StoreCredential,
    TimerFired,
)
from devices_virtual.driver.io import FleetIO
from devices_virtual.driver.keys import DeviceKeys
from devices_virtual.driver.resolver import UnknownHost

_DEFAULT_PORTS = {"http": 80, "https": 443, "wss": 443, "ws": 80}


def response_body(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


class VirtualDevice:
    __slots__ = (
        "_channel",
        "_http",
        "_ws",
        "agent",
        "ctx",
        "dm_ca_file",
        "fleet",
        "io",
        "keys",
        "name",
        "stats",
        "timers",
    )

    def __init__(
        self,
        io: FleetIO,
        agent: DeviceAgent,
        keys: DeviceKeys,
        dm_ca_file: Path,
        fleet: str = "",
    ) -> None:
        self.io = io
        self.agent = agent
        self.keys = keys
        self.dm_ca_file = dm_ca_file
        self.fleet = fleet
        self.name = agent.identity.mac
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.stats: Counter[str] = Counter()
        self.ctx: ssl.SSLContext | None = None
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None
        self._channel: asyncio.Task[None] | None = None

    # -- events in, actions out ---------------------------------------------------------------

    def feed(self, event: Event) -> None:
        for action in self.agent.handle(event):
            self._do(action)

    def power_on(self) -> None:
        self.feed(PowerOn(self.io.now()))

    def _do(self, action: Action) -> None:
        io = self.io
        match action:
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
            case HttpRequest():
                io.spawn(self._request(action))
            case NtpQuery():
                io.spawn(self._ntp(action))
            case StoreCredential():
                self.keys.store(action.certificate_pem, action.ca_pem)
                self.ctx = self.keys.ssl_context(self.dm_ca_file)
                self.stats["enrolled"] += 1
                io.log({"kind": "enrolled", "device": self.name, "device_id": action.device_id})
            case ForgetCredential():
                self.keys.forget()
                self.ctx = None
                io.log({"kind": "credential_forgotten", "device": self.name})
            case OpenChannel():
                self._channel = io.spawn(self._run_channel(action.url))
            case SendChannel():
                io.spawn(self._send(action.message))
            case CloseDmSession():
                io.spawn(self.close_dm_session())
            case Reboot():
                io.loop.call_soon(self.power_on)
            case InstallImage():
                event = ImageInstalled(io.now(), action.version, False, "not supported yet")
                io.loop.call_soon(self.feed, event)

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.feed(TimerFired(self.io.now(), name))

    # -- HTTP ------------------------------------------------------------------------------------

    async def _request(self, request: HttpRequest) -> None:
        io = self.io
        parts = urlsplit(request.url)
        host, scheme = parts.hostname or "", parts.scheme
        try:
            address, port = io.resolver.resolve(host, scheme, parts.port)
        except UnknownHost as exc:
            self.feed(RequestFailed(io.now(), request.request_id, str(exc)))
            return
        if request.target == "dm" and not self.agent.dm_enabled:
            # asked for before the switch went off, not yet sent: the switch wins
            self.feed(RequestFailed(io.now(), request.request_id, "DM connection switched off"))
            return
        io.record(self.name, host, port, scheme, request.target, request.purpose)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extensions: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if request.target == "dm":
            client = self._dm_client(request.mtls, parts)
            url = request.url
        else:
            client = io.vendor if scheme == "https" else io.plain
            url = f"{scheme}://{address}:{port}{path}"
            headers["host"] = host
            if scheme == "https":
                extensions["sni_hostname"] = host
        if client is None:
            self.feed(RequestFailed(io.now(), request.request_id, "no device certificate"))
            return
        try:
            response = await client.request(
                request.method, url, json=request.json, headers=headers, extensions=extensions
            )
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            self.stats[f"{request.purpose}:failed"] += 1
            self.feed(RequestFailed(io.now(), request.request_id, f"{type(exc).__name__}: {exc}"))
            return
        self.stats[f"{request.purpose}:{response.status_code}"] += 1
        self.feed(
            HttpResponse(
                io.now(), request.request_id, response.status_code, response_body(response)
            )
        )

    def _dm_client(self, mtls: bool, parts: Any) -> httpx.AsyncClient | None:
        if not mtls:
            base = f"{parts.scheme}://{parts.netloc}"
            return self.io.shared_client(base, self.dm_ca_file)
        if self.ctx is None:
            return None
        if self._http is None:
            self._http = self.io.device_client(self.ctx)
        return self._http

    # -- NTP -------------------------------------------------------------------------------------

    async def _ntp(self, query: NtpQuery) -> None:
        io = self.io
        try:
            address, port = io.resolver.resolve(query.host, "ntp")
        except UnknownHost as exc:
            self.feed(RequestFailed(io.now(), query.request_id, str(exc)))
            return
        io.record(self.name, query.host, port, "ntp", "ntp", "time")
        try:
            server_time = await io.sntp_query(address, port)
        except (TimeoutError, OSError, ValueError) as exc:
            self.feed(RequestFailed(io.now(), query.request_id, f"{type(exc).__name__}: {exc}"))
            return
        self.stats["ntp:ok"] += 1
        self.feed(NtpReply(io.now(), query.request_id, server_time))

    # -- the command channel -----------------------------------------------------------------------

    async def _run_channel(self, url: str) -> None:
        io = self.io
        if not self.agent.dm_enabled:
            return
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
        io.record(self.name, parts.hostname or "", port, parts.scheme, "dm", "commands")
        code = 1006
        try:
            async with connect(
                url,
                ssl=self.ctx,
                compression=None,
                ping_interval=None,
                max_queue=4,
                open_timeout=io.timeout,
                close_timeout=2,
            ) as ws:
                self._ws = ws
                self.feed(ChannelOpened(io.now()))
                async for raw in ws:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(message, dict):
                        self.stats["command"] += 1
                        self.feed(ChannelMessage(io.now(), message))
            code = ws.close_code or 1000
        except InvalidStatus as exc:
            code = 4003 if exc.response.status_code in (401, 403) else 1006
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
        except (WebSocketException, OSError, TimeoutError, ssl.SSLError):
            code = 1006
        finally:
            self._ws = None
        self.stats[f"channel_closed:{code}"] += 1
        self.feed(ChannelClosed(io.now(), code))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps(message))

    async def close_dm_session(self) -> None:
        """Close the command channel and the pooled DM connections (no event goes back)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.done():
            channel.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await channel
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def shutdown(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        await self.close_dm_session()
