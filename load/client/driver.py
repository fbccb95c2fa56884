"""The driver core: runs a sans-IO DeviceAgent or MeetingClient over a `Network`, firing one Locust
request event per request, per socket opened and per message sent or received.

It imports neither gevent nor Locust. A Locust user gives it the gevent network
(`load.client.network`) and `environment.events.request.fire`; the bench gives it a no-op network.
Every call is synchronous: a request returns when its answer is in, and its answer is fed back into
the agent at once, so a Locust task that ticks the agent's telemetry timer ends when the telemetry
is stored (and `constant_throughput` paces whole tasks, as Locust means it to).

Statistics names are the endpoint kind (`dm telemetry`, `meeting join`), never a URL or a device.
The agent's heartbeat and telemetry timers are "paced": the Locust task schedule replaces them (a
task calls `tick("telemetry")`), so the load is what the scenario says. Its other timers (channel
retry, enrollment backoff, NTP) run as real timers. NTP and connectivity checks are answered
locally: the load targets the DM and meeting services, not the internet. Every other action is
carried out: a firmware download over the device's mutual TLS, an install to its virtual flash, a
reboot. Each driver dispatches its actions with an exhaustive `match`, so mypy names an action
that a driver does not handle.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol, assert_never

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
from load.kinds import HTTP, WSS_OPEN, WSS_RECV, WSS_SEND, endpoint
from protocol.signaling import MessageType

Fire = Callable[..., None]  # environment.events.request.fire
PACED = frozenset({"heartbeat", "telemetry"})


class TransportError(Exception):
    """No answer: refused, reset, timed out, TLS refused. `code` is a WebSocket close code."""

    def __init__(self, reason: str, code: int = 1006) -> None:
        super().__init__(reason)
        self.code = code


class StatusError(Exception):
    """An answer with a status the caller did not expect (the failure Locust records)."""

    def __init__(self, status: int, body: Any) -> None:
        reason = body.get("reason") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {reason or str(body)[:80]}")
        self.status = status


class ServerMessageError(Exception):
    """An `error` message on a socket."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    length: int


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """A client certificate and its key, by file (ssl reads only files)."""

    key: str
    cert_file: Path
    key_file: Path


class Socket(Protocol):
    def send(self, text: str) -> None: ...

    def close(self, code: int = 1000) -> None: ...


class Network(Protocol):
    def http(
        self, method: str, url: str, body: Any, *, tls: TlsIdentity | None, bearer: str | None
    ) -> Reply: ...

    def websocket(
        self,
        url: str,
        *,
        tls: TlsIdentity | None,
        bearer: str | None,
        on_message: Callable[[str], None],
        on_close: Callable[[int], None],
    ) -> Socket: ...

    def forget(self, tls: TlsIdentity) -> None: ...


class Timers(Protocol):
    def start(self, delay: float, callback: Callable[[], None]) -> object: ...

    def cancel(self, handle: object) -> None: ...


class NoTimers:
    """Timers that never fire (the bench; a user whose timers are all paced)."""

    def start(self, delay: float, callback: Callable[[], None]) -> object:
        return None

    def cancel(self, handle: object) -> None:
        return None


class _Link:
    __slots__ = ("closed_here",)

    def __init__(self) -> None:
        self.closed_here = False


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


class _Driven:
    """What both drivers share: the clock, timers, statistics names and firing."""

    service = ""

    def __init__(
        self,
        network: Network,
        fire: Fire,
        timers: Timers,
        clock: Callable[[], float],
        on_change: Callable[[], None] | None,
    ) -> None:
        self.network = network
        self.fire = fire
        self.timers = timers
        self.clock = clock
        self.on_change = on_change
        self.context: dict[str, Any] = {}
        self.statuses: Counter[str] = Counter()
        self.socket: Socket | None = None
        self._link: _Link | None = None
        self._timers: dict[str, object] = {}
        self._names: dict[str, str] = {}

    def name(self, purpose: str) -> str:
        name = self._names.get(purpose)
        if name is None:
            name = self._names[purpose] = endpoint(self.service, purpose)
        return name

    def report(
        self,
        request_type: str,
        name: str,
        started: float | None,
        length: int = 0,
        exception: Exception | None = None,
    ) -> None:
        self.fire(
            request_type=request_type,
            name=name,
            response_time=0.0 if started is None else _ms(started),
            response_length=length,
            exception=exception,
            context=self.context,
        )

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            self.timers.cancel(handle)

    def _start_timer(self, name: str, at: float, fire: Callable[[str], None]) -> None:
        self._cancel_timer(name)
        delay = max(0.0, at - self.clock())
        self._timers[name] = self.timers.start(delay, lambda: fire(name))

    def _send(self, message: dict[str, Any]) -> None:
        socket = self.socket
        kind = self.name(str(message.get("type")))
        if socket is None:
            self.report(WSS_SEND, kind, None, 0, TransportError("socket not open"))
            return
        text = json.dumps(message)
        started = time.perf_counter()
        try:
            socket.send(text)
        except TransportError as exc:
            self.report(WSS_SEND, kind, started, 0, exc)
            return
        self.report(WSS_SEND, kind, started, len(text))

    def _close_socket(self, code: int = 1000) -> None:
        socket, link = self.socket, self._link
        self.socket = self._link = None
        if link is not None:
            link.closed_here = True
        if socket is not None:
            socket.close(code)

    def _open(
        self,
        name: str,
        url: str,
        tls: TlsIdentity | None,
        bearer: str | None,
        on_message: Callable[[str], None],
        on_close: Callable[[_Link, int], None],
    ) -> TransportError | None:
        """Open a socket and report it under `name`; returns the error if it could not open. Its
        close is reported with its own link, so a late close of an old socket is told apart from
        the current one's."""
        link = _Link()
        started = time.perf_counter()
        try:
            socket = self.network.websocket(
                url,
                tls=tls,
                bearer=bearer,
                on_message=on_message,
                on_close=lambda code: on_close(link, code),
            )
        except TransportError as exc:
            self.report(WSS_OPEN, name, started, 0, exc)
            return exc
        self.socket, self._link = socket, link
        self.report(WSS_OPEN, name, started)
        return None

    def _decode(self, raw: str) -> tuple[str, dict[str, Any]] | None:
        """A server message as (type, message); one that is not JSON is reported as a failure,
        and one that is not an object is ignored."""
        try:
            message = json.loads(raw)
        except ValueError:
            self.report(WSS_RECV, self.name("invalid message"), None, len(raw), ValueError(raw))
            return None
        if not isinstance(message, dict):
            return None
        return str(message.get("type")), message

    def _forget_link(self, link: _Link) -> bool:
        """The socket of `link` closed: True if it was the current one and not closed here."""
        if link is self._link:
            self.socket = self._link = None
        return not link.closed_here

    def shutdown(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)
        self._close_socket()


class DeviceDriver(_Driven):
    """One room device's DeviceAgent towards its DM region."""

    service = "dm"

    def __init__(
        self,
        agent: DeviceAgent,
        network: Network,
        fire: Fire,
        *,
        keys: DeviceKeys | None = None,
        timers: Timers | None = None,
        clock: Callable[[], float] = time.monotonic,
        paced: frozenset[str] = PACED,
        expect: Mapping[str, frozenset[int]] | None = None,
        names: Mapping[str, str] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(network, fire, timers or NoTimers(), clock, on_change)
        self.agent = agent
        self.keys = keys
        self.paced = paced
        self.expect = dict(expect or {})
        self._names.update(names or {})
        self.tls: TlsIdentity | None = None
        self.due: dict[str, float] = {}

    # -- events in ----------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        for action in self.agent.handle(event):
            self._do(action)
        if self.on_change is not None:
            self.on_change()

    def _do(self, action: Action) -> None:
        match action:
            case HttpRequest():
                self._http(action)
            case StartTimer():
                self._timer_started(action)
            case CancelTimer():
                self._cancel_timer(action.name)
            case NtpQuery():
                self._ntp(action)
            case StoreCredential():
                self._store(action)
            case NewKey():
                self._new_key(action)
            case WipeIdentity():
                self._forget(None)
                if self.keys is not None:
                    self.keys.wipe()
            case ForgetCredential():
                self._forget(action)
            case OpenChannel():
                self._open_channel(action)
            case SendChannel():
                self._send(action.message)
            case CloseDmSession():
                self._close_session()
            case DownloadFile():
                self._download(action)
            case InstallImage():
                self._install(action)
            case Reboot():
                self.feed(PowerOn(self.clock()))
            case _:
                assert_never(action)

    def power_on(self) -> None:
        self.feed(PowerOn(self.clock()))

    def tick(self, name: str) -> None:
        """Fire one of the agent's timers now (what a Locust task does for paced timers)."""
        self.feed(TimerFired(self.clock(), name))

    def _fire_timer(self, name: str) -> None:
        self._timers.pop(name, None)
        self.feed(TimerFired(self.clock(), name))

    # -- actions out --------------------------------------------------------------------------

    def _http(self, action: HttpRequest) -> None:
        # the hot path of a load run (and of the client bench): keep it lean
        if action.target != "dm":
            reason = "only the DM service is loaded"
            self.feed(RequestFailed(self.clock(), action.request_id, reason))
            return
        tls = None
        if action.mtls:
            tls = self.tls
            if tls is None:
                self.feed(RequestFailed(self.clock(), action.request_id, "no device certificate"))
                return
        purpose = action.purpose
        name = self._names.get(purpose) or self.name(purpose)
        started = perf_counter()
        try:
            reply = self.network.http(action.method, action.url, action.json, tls=tls, bearer=None)
        except TransportError as exc:
            self.report(HTTP, name, started, 0, exc)
            self.feed(RequestFailed(self.clock(), action.request_id, str(exc)))
            return
        status = reply.status
        if self.expect:
            wanted = self.expect.get(purpose)
            ok = status in wanted if wanted is not None else 200 <= status < 300
        else:
            ok = 200 <= status < 300
        self.fire(
            request_type=HTTP,
            name=name,
            response_time=(perf_counter() - started) * 1000.0,
            response_length=reply.length,
            exception=None if ok else StatusError(status, reply.body),
            context=self.context,
        )
        self.feed(HttpResponse(self.clock(), action.request_id, status, reply.body))

    def _timer_started(self, action: StartTimer) -> None:
        if action.name in self.paced:
            self.due[action.name] = action.at
            return
        self._start_timer(action.name, action.at, self._fire_timer)

    def _ntp(self, action: NtpQuery) -> None:
        self.feed(NtpReply(self.clock(), action.request_id, time.time()))

    def _store(self, action: StoreCredential) -> None:
        if self.tls is not None:  # a renewal: the pooled connections hold the old certificate
            self.network.forget(self.tls)
        if self.keys is None:
            self.tls = TlsIdentity(action.device_id, Path(), Path())
            return
        self.keys.store(action.certificate_pem, action.ca_pem, action.new_key)
        self.tls = TlsIdentity(self.keys.stem, self.keys.cert_file, self.keys.key_file)

    def _new_key(self, action: NewKey) -> None:
        """A new key beside the current one (a renewal, or enrolling after a factory reset)."""
        identity = self.agent.identity
        csr = ""
        if self.keys is not None:
            csr = self.keys.new_csr_pem(identity.mac, identity.serial_number)
        self.statuses["new_key"] += 1
        self.feed(KeyReady(self.clock(), action.request_id, csr))

    def _forget(self, _action: ForgetCredential | None) -> None:
        if self.tls is not None:
            self.network.forget(self.tls)
        if self.keys is not None:
            self.keys.forget()
        self.tls = None

    def _close_session(self) -> None:
        self._close_socket()
        if self.tls is not None:
            self.network.forget(self.tls)

    def _download(self, action: DownloadFile) -> None:
        """A file from the DM region over the device's mutual-TLS session, as raw bytes."""
        if self.tls is None:
            self.feed(RequestFailed(self.clock(), action.request_id, "no device certificate"))
            return
        name = self.name(action.purpose)
        started = perf_counter()
        try:
            reply = self.network.http("GET", action.url, None, tls=self.tls, bearer=None)
        except TransportError as exc:
            self.report(HTTP, name, started, 0, exc)
            self.feed(RequestFailed(self.clock(), action.request_id, str(exc)))
            return
        ok = reply.status == 200
        error = None if ok else StatusError(reply.status, reply.body)
        self.report(HTTP, name, started, reply.length, error)
        data = reply.body if isinstance(reply.body, bytes) else b""
        self.feed(DownloadDone(self.clock(), action.request_id, reply.status, data))

    def _install(self, action: InstallImage) -> None:
        """A virtual device's flash: writing the verified image to its slot cannot fail."""
        self.feed(ImageInstalled(self.clock(), action.version, True))

    # -- the command channel --------------------------------------------------------------------

    def _open_channel(self, action: OpenChannel) -> None:
        name = self.name("command channel")
        if self.tls is None:
            self.report(WSS_OPEN, name, None, 0, TransportError("no device certificate"))
            self.feed(ChannelClosed(self.clock(), 1006))
            return
        error = self._open(
            name, action.url, self.tls, None, self._channel_message, self._channel_closed
        )
        self.feed(ChannelClosed(self.clock(), error.code) if error else ChannelOpened(self.clock()))

    def _channel_message(self, raw: str) -> None:
        decoded = self._decode(raw)
        if decoded is None:
            return
        kind, message = decoded
        self.report(WSS_RECV, self.name(kind), None, len(raw))
        self.statuses[f"received:{kind}"] += 1
        self.feed(ChannelMessage(self.clock(), message))

    def _channel_closed(self, link: _Link, code: int) -> None:
        if self._forget_link(link):  # closed by the agent: no event goes back
            self.feed(ChannelClosed(self.clock(), code))


class MeetingDriver(_Driven):
    """One meeting user's (or room system's) MeetingClient towards its meeting region."""

    service = "meeting"

    def __init__(
        self,
        client: MeetingClient,
        network: Network,
        fire: Fire,
        *,
        keys: DeviceKeys | None = None,
        timers: Timers | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
        keep_shown: int = 50,
    ) -> None:
        super().__init__(network, fire, timers or NoTimers(), clock, on_change)
        self.client = client
        self.keys = keys
        self.tls: TlsIdentity | None = None
        self.shown: list[Show] = []
        self.keep_shown = keep_shown

    def feed(self, event: ClientEvent) -> None:
        for action in self.client.handle(event):
            self._do(action)
        if self.on_change is not None:
            self.on_change()

    def _do(self, action: ClientAction) -> None:
        match action:
            case HttpRequest():
                self._http(action)
            case StartTimer():
                self._start_timer(action.name, action.at, self._fire_timer)
            case CancelTimer():
                self._cancel_timer(action.name)
            case OpenSocket():
                self._open_socket(action)
            case SendSocket():
                self._send(action.message)
            case CloseSocket():
                self._close_socket(action.code)
            case StoreRoomCredential():
                self._store(action)
            case Show():
                self._show(action)
            case _:
                assert_never(action)

    def _fire_timer(self, name: str) -> None:
        self._timers.pop(name, None)
        self.feed(TimerDue(self.clock(), name))

    def _http(self, action: HttpRequest) -> None:
        tls = self.tls if action.mtls else None
        name = self.name(action.purpose)
        started = time.perf_counter()
        try:
            reply = self.network.http(
                action.method, action.url, action.json, tls=tls, bearer=action.bearer
            )
        except TransportError as exc:
            self.report(HTTP, name, started, 0, exc)
            self.feed(HttpFailed(self.clock(), action.request_id, str(exc)))
            return
        ok = 200 <= reply.status < 300
        self.report(
            HTTP, name, started, reply.length, None if ok else StatusError(reply.status, reply.body)
        )
        self.feed(HttpAnswer(self.clock(), action.request_id, reply.status, reply.body))

    def _store(self, action: StoreRoomCredential) -> None:
        assert self.keys is not None, "a room system needs its key files"
        self.keys.store(action.certificate_pem, action.ca_pem)
        self.tls = TlsIdentity(self.keys.stem, self.keys.cert_file, self.keys.key_file)

    def _show(self, action: Show) -> None:
        self.shown.append(action)
        if len(self.shown) > self.keep_shown:
            del self.shown[0]

    def _open_socket(self, action: OpenSocket) -> None:
        name = self.name("signaling")
        tls = self.tls if action.token is None else None
        error = self._open(name, action.url, tls, action.token, self._message, self._closed)
        self.feed(SocketClosed(self.clock(), error.code) if error else SocketOpened(self.clock()))

    def _message(self, raw: str) -> None:
        decoded = self._decode(raw)
        if decoded is None:
            return
        kind, message = decoded
        error = (
            ServerMessageError(str(message.get("reason"))) if kind == MessageType.ERROR else None
        )
        self.report(WSS_RECV, self.name(kind), None, len(raw), error)
        self.statuses[f"received:{kind}"] += 1
        self.feed(SocketMessage(self.clock(), message))

    def _closed(self, link: _Link, code: int) -> None:
        # the client wants to hear of every close, its own included (it may open a fresh socket)
        self._forget_link(link)
        self.feed(SocketClosed(self.clock(), code))
