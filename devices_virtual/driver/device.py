"""One virtual device in the asyncio driver: performs its DeviceAgent's actions for real.

HTTP/1.1 over bare TLS sockets (mutual TLS with the device's own certificate towards the DM
service), the command channel over WSS, NTP over UDP, timers on the driver's shared timer heap.
Every outbound connection is recorded before it is made.

A device costs what it must and little more (see `wire`): its SSL context (it holds the device's
own certificate and key, so it cannot be shared), its idle command channel, its agent, and a timer
entry or three. Reports open a fresh connection and close it when answered, so an idle device holds
no HTTP connection between heartbeats. (The DM server closes an idle keep-alive connection after
30 s, the heartbeat interval, so a kept one would cost memory and never be reused.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from collections import Counter
from pathlib import Path
from typing import Any, assert_never
from urllib.parse import SplitResult, urlsplit

import h11

from devices_virtual.agent import (
    Action,
    CancelTimer,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    CloseDmSession,
    DeviceAgent,
    DownloadDone,
    DownloadFile,
    Event,
    ForgetCredential,
    HttpRequest,
    HttpResponse,
    ImageInstalled,
    InstallImage,
    KeyReady,
    NewKey,
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
    WipeIdentity,
)
from devices_virtual.driver.io import FleetIO, Timer
from devices_virtual.driver.keys import DeviceKeys
from devices_virtual.driver.resolver import UnknownHost
from devices_virtual.driver.wire import (
    Channel,
    ChannelRefused,
    HttpError,
    Stream,
    decode_body,
    http_request,
)
from protocol.dm_channel import CloseCode

_DEFAULT_PORTS = {"http": 80, "https": 443, "wss": 443, "ws": 80}
_MAX_DOWNLOAD = 256 << 20
_FAILURES = (OSError, TimeoutError, ssl.SSLError, HttpError, h11.ProtocolError)


class NoCertificate(LookupError):
    """A mutual-TLS request before the device has its certificate (or after it was revoked)."""


def _stat(key: str) -> str:
    """Counter keys are interned: thousands of devices share one string per key."""
    return sys.intern(key)


class VirtualDevice:
    __slots__ = (
        "_channel",
        "_opening",
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
        self.timers: dict[str, Timer] = {}
        self.stats: Counter[str] = Counter()
        self.ctx: ssl.SSLContext | None = None  # the device's own mutual-TLS context
        self._channel: Channel | None = None
        self._opening: asyncio.Task[None] | None = None

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
                self.timers[action.name] = io.timers.call_at(
                    io.loop_time(action.at), self._fire, action.name
                )
            case CancelTimer():
                timer = self.timers.pop(action.name, None)
                if timer is not None:
                    timer.cancel()
            case HttpRequest():
                io.spawn(self._request(action))
            case NtpQuery():
                io.spawn(self._ntp(action))
            case StoreCredential():
                self.keys.store(action.certificate_pem, action.ca_pem, action.new_key)
                self.ctx = self.keys.ssl_context(self.dm_ca_file)
                self.stats[_stat("enrolled")] += 1
                io.log({"kind": "enrolled", "device": self.name, "device_id": action.device_id})
            case NewKey():
                identity = self.agent.identity
                csr = self.keys.new_csr_pem(identity.mac, identity.serial_number)
                io.loop.call_soon(self.feed, KeyReady(io.now(), action.request_id, csr))
            case WipeIdentity():
                self.keys.wipe()
                self.ctx = None
                self._close_channel()
                self.stats[_stat("factory_reset")] += 1
                io.log({"kind": "factory_reset", "device": self.name})
            case ForgetCredential():
                self.keys.forget()
                self.ctx = None
                io.log({"kind": "credential_forgotten", "device": self.name})
            case OpenChannel():
                self._close_channel()
                self._opening = io.spawn(self._open_channel(action.url))
            case SendChannel():
                if self._channel is not None:
                    self._channel.send_text(json.dumps(action.message))
            case CloseDmSession():
                self._close_channel()
            case Reboot():
                io.loop.call_soon(self.power_on)
            case DownloadFile():
                io.spawn(self._download(action))
            case InstallImage():
                # a virtual device's flash: writing the verified image to its slot cannot fail
                event = ImageInstalled(io.now(), action.version, True)
                io.loop.call_soon(self.feed, event)
            case _:
                assert_never(action)

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.feed(TimerFired(self.io.now(), name))

    # -- HTTP ------------------------------------------------------------------------------------

    def _context(self, target: str, scheme: str, mtls: bool) -> ssl.SSLContext | None:
        """The TLS context of a request: None for plain HTTP. Contexts without a client
        certificate are shared by every device (one per CA); a mutual-TLS one is the device's."""
        if scheme not in ("https", "wss"):
            return None
        if target != "dm":
            return self.io.vendor_context
        if not mtls:
            return self.io.verify_context(self.dm_ca_file)
        if self.ctx is None:
            raise NoCertificate("no device certificate")
        return self.ctx

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
        try:
            ctx = self._context(request.target, scheme, request.mtls)
        except NoCertificate as exc:
            self.feed(RequestFailed(io.now(), request.request_id, str(exc)))
            return
        io.record(self.name, host, port, scheme, request.target, request.purpose)
        headers = [("authorization", f"Bearer {request.bearer}")] if request.bearer else []
        try:
            async with asyncio.timeout(io.timeout):
                stream = await self._connect(address, port, ctx, host)
                try:
                    status, answer, body = await http_request(
                        stream, request.method, parts.netloc, _target(parts), request.json, headers
                    )
                finally:
                    stream.close()
        except _FAILURES as exc:
            self.stats[_stat(f"{request.purpose}:failed")] += 1
            self.feed(RequestFailed(io.now(), request.request_id, f"{type(exc).__name__}: {exc}"))
            return
        self.stats[_stat(f"{request.purpose}:{status}")] += 1
        self.feed(HttpResponse(io.now(), request.request_id, status, decode_body(answer, body)))

    async def _connect(
        self, address: str, port: int, ctx: ssl.SSLContext | None, host: str
    ) -> Stream:
        """A fresh connection. TLS sessions are not resumed: in CPython, reading and setting a
        session serialises it and parses the peer certificate again, which costs about what the
        resumed handshake saves (measured here), and a kept session costs memory per device."""
        return await Stream.open(self.io.loop, address, port, ctx, host)

    async def _download(self, action: DownloadFile) -> None:
        """A file from the DM server over the device's own mutual-TLS session, as raw bytes."""
        io = self.io
        parts = urlsplit(action.url)
        if self.ctx is None or not self.agent.dm_enabled:
            self.feed(RequestFailed(io.now(), action.request_id, "no DM session"))
            return
        host = parts.hostname or ""
        try:
            address, port = io.resolver.resolve(host, parts.scheme, parts.port)
        except UnknownHost as exc:
            self.feed(RequestFailed(io.now(), action.request_id, str(exc)))
            return
        io.record(self.name, host, port, parts.scheme, "dm", action.purpose)
        try:
            async with asyncio.timeout(io.timeout):
                stream = await self._connect(address, port, self.ctx, host)
                try:
                    status, _headers, body = await http_request(
                        stream, "GET", parts.netloc, _target(parts), max_body=_MAX_DOWNLOAD
                    )
                finally:
                    stream.close()
        except _FAILURES as exc:
            self.stats[_stat(f"{action.purpose}:failed")] += 1
            self.feed(RequestFailed(io.now(), action.request_id, f"{type(exc).__name__}: {exc}"))
            return
        self.stats[_stat(f"{action.purpose}:{status}")] += 1
        self.feed(DownloadDone(io.now(), action.request_id, status, body))

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
        self.stats[_stat("ntp:ok")] += 1
        self.feed(NtpReply(io.now(), query.request_id, server_time))

    # -- the command channel -----------------------------------------------------------------------

    async def _open_channel(self, url: str) -> None:
        io = self.io
        if not self.agent.dm_enabled:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
        try:
            ctx = self._context("dm", parts.scheme, True)
        except NoCertificate:
            self._opening = None
            self._channel_ended(1006)
            return
        io.record(self.name, host, port, parts.scheme, "dm", "commands")
        try:
            address, port = io.resolver.resolve(host, parts.scheme, port)
            async with asyncio.timeout(io.timeout):
                stream = await self._connect(address, port, ctx, host)
                channel = Channel(stream, url, self._channel_message, self._channel_ended)
                try:
                    await channel.handshake()
                except BaseException:
                    stream.close()
                    raise
        except ChannelRefused as exc:
            code = CloseCode.REVOKED if exc.status in (401, 403) else 1006
            self._opening = None
            self._channel_ended(code)
            return
        except (*_FAILURES, UnknownHost, ValueError):
            self._opening = None
            self._channel_ended(1006)
            return
        self._opening = None
        self._channel = channel
        self.feed(ChannelOpened(io.now()))

    def _channel_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict):
            self.stats[_stat("command")] += 1
            self.io.log(_received(self.name, message))
            self.feed(ChannelMessage(self.io.now(), message))

    def _channel_ended(self, code: int) -> None:
        self._channel = None
        self.stats[_stat(f"channel_closed:{code}")] += 1
        self.feed(ChannelClosed(self.io.now(), code))

    def _close_channel(self) -> None:
        """Close the command channel (or stop it opening) locally; no event goes back."""
        opening, self._opening = self._opening, None
        if opening is not None and not opening.done():
            opening.cancel()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    async def close_dm_session(self) -> None:
        """Close the command channel (no event goes back); reports hold no pooled connection."""
        opening = self._opening
        self._close_channel()
        if opening is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await opening

    async def shutdown(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        await self.close_dm_session()


def _received(device: str, message: dict[str, Any]) -> dict[str, Any]:
    """The log record of a message on the command channel: its id, kind and (for a profile) the
    version, never the payload (a firmware command carries a download key)."""
    payload = message.get("payload")
    version = payload.get("version") if isinstance(payload, dict) else None
    record = {"kind": "command", "device": device, "type": message.get("type")}
    record.update(command_id=message.get("command_id"), command=message.get("kind"))
    return {**record, "version": version} if message.get("kind") == "config" else record


def _target(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
