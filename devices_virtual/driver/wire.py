"""Lean client connections, so that one driver process holds thousands of idle devices.

A device needs one long-lived connection (its outbound WSS command channel, mutual TLS) and a short
one now and then (a heartbeat, a report, a connectivity check). Here both are bare non-blocking
sockets, TLS through `ssl.SSLSocket`, driven by the event loop's reader and writer callbacks:

- `Stream`: connect, TLS handshake, send and receive, on any asyncio or uvloop loop;
- `http_request`: one HTTP/1.1 exchange with h11 (`Connection: close`), then the socket is closed;
- `Channel`: a WebSocket client with the sans-IO protocol of `websockets`, fed by a reader callback
  rather than a task, so an idle channel costs its socket, its TLS state and a few small objects.

Measured on this machine (CPython 3.11, OpenSSL 3.0, uvloop), an idle TLS connection costs about
28 KiB as an `SSLSocket`, about 50 KiB through uvloop's SSL transport and about 290 KiB through
asyncio's (its 256 KiB read buffer). A per-device httpx client adds a connection pool; a shared
pool walks every idle connection it holds on each request, which stalls enrollment of thousands.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import h11
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri

READ_SIZE = 16 * 1024  # one TLS record at most
ABNORMAL_CLOSURE = 1006
USER_AGENT = "roomtrust-virtual-device"
_MAX_HEAD = 64 * 1024  # an opening-handshake response head larger than this is refused

_WOULD_BLOCK_READ = (ssl.SSLWantReadError, BlockingIOError, InterruptedError)
_WOULD_BLOCK_WRITE = (ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


class Stream:
    """A connected non-blocking TCP socket, TLS-wrapped when a context is given."""

    __slots__ = ("_fd", "_loop", "_out", "_sock", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._out: deque[memoryview] | None = None  # data waiting for the socket to drain
        self.closed = False

    @classmethod
    async def open(
        cls,
        loop: asyncio.AbstractEventLoop,
        address: str,
        port: int,
        ctx: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> Stream:
        """Connect, and shake hands when `ctx` is given (resuming `session` if one is given and
        the server still accepts it)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, (address, port))
            if ctx is not None:
                sock = ctx.wrap_socket(
                    sock,
                    server_hostname=server_hostname or address,
                    do_handshake_on_connect=False,
                    session=session,
                )
            stream = cls(loop, sock)
            if ctx is not None:
                await stream._handshake()
        except BaseException:
            sock.close()
            raise
        return stream

    @property
    def ssl_object(self) -> ssl.SSLSocket | None:
        return self._sock if isinstance(self._sock, ssl.SSLSocket) else None

    @property
    def resumable_session(self) -> ssl.SSLSession | None:
        """The TLS session to resume on the next connection (TLS 1.3 sends its ticket after the
        handshake, so ask once something has been received), or None."""
        sock = self.ssl_object
        if sock is None or self.closed:
            return None
        session = sock.session
        return session if session is not None and session.has_ticket else None

    async def _handshake(self) -> None:
        assert isinstance(self._sock, ssl.SSLSocket)
        while True:
            try:
                self._sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._ready(reading=True)
            except ssl.SSLWantWriteError:
                await self._ready(reading=False)

    async def _ready(self, reading: bool) -> None:
        """Wait until the socket is readable (or writable)."""
        if self.closed:
            raise ConnectionResetError("stream closed")
        waiter: asyncio.Future[None] = self._loop.create_future()
        add, remove = (
            (self._loop.add_reader, self._loop.remove_reader)
            if reading
            else (self._loop.add_writer, self._loop.remove_writer)
        )
        add(self._fd, _wake, waiter)
        try:
            await waiter
        finally:
            if not self.closed:
                remove(self._fd)

    async def recv(self, size: int = READ_SIZE) -> bytes:
        """The next bytes received; b"" at the end of the stream."""
        while True:
            try:
                return self._sock.recv(size)
            except _WOULD_BLOCK_READ:
                await self._ready(reading=True)
            except ssl.SSLWantWriteError:
                await self._ready(reading=False)

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except _WOULD_BLOCK_WRITE:
                await self._ready(reading=False)
                continue
            except ssl.SSLWantReadError:
                await self._ready(reading=True)
                continue
            view = view[sent:]

    # -- callback mode: for a long-lived connection, no task waits on it ------------------------

    def start_reading(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        """Call `on_data` with whatever arrives and `on_eof` once at the end (or on an error)."""

        def readable() -> None:
            while not self.closed:
                try:
                    data = self._sock.recv(READ_SIZE)
                except _WOULD_BLOCK_READ:
                    return
                except ssl.SSLWantWriteError:
                    return  # no renegotiation (it is switched off); try again on the next read
                except OSError:
                    data = b""
                if not data:
                    self.close()
                    on_eof()
                    return
                on_data(data)

        self._loop.add_reader(self._fd, readable)

    def write(self, data: bytes) -> None:
        """Send without waiting; what the socket does not take now is sent when it drains."""
        if self.closed or not data:
            return
        if self._out is not None:
            self._out.append(memoryview(data))
            return
        self._out = deque([memoryview(data)])
        self._drain()

    def _drain(self) -> None:
        out = self._out
        while out:
            chunk = out[0]
            try:
                sent = self._sock.send(chunk)
            except (*_WOULD_BLOCK_WRITE, ssl.SSLWantReadError):
                # a TLS write that must wait is retried with the same bytes, as OpenSSL requires
                self._loop.add_writer(self._fd, self._writable)
                return
            except OSError:
                self.close()
                return
            if sent < len(chunk):
                out[0] = chunk[sent:]
            else:
                out.popleft()
        self._out = None

    def _writable(self) -> None:
        self._loop.remove_writer(self._fd)
        self._drain()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out = None
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# -- HTTP --------------------------------------------------------------------------------------------


class HttpError(Exception):
    """The server's answer was not a valid HTTP/1.1 response."""


async def http_request(
    stream: Stream,
    method: str,
    host: str,
    target: str,
    body: dict[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
    max_body: int = 1 << 20,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (`Connection: close`); returns status, headers, body."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
    data = b"" if body is None else json.dumps(body).encode()
    head = [("host", host), ("user-agent", USER_AGENT), ("connection", "close")]
    if body is not None:
        head += [("content-type", "application/json"), ("content-length", str(len(data)))]
    elif method not in ("GET", "HEAD"):
        head.append(("content-length", "0"))
    head += headers or []
    out = conn.send(h11.Request(method=method, target=target, headers=head)) or b""
    if data:
        out += conn.send(h11.Data(data=data)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)
    status, answer, chunks, size = 0, {}, [], 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.recv())
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    raise HttpError(f"response body over {max_body} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError as exc:
        raise HttpError(str(exc)) from exc
    if not status:
        raise HttpError("connection closed before a response")
    return status, answer, b"".join(chunks)


def decode_body(headers: dict[str, str], body: bytes) -> Any:
    """JSON when the server says so (text when it is not valid JSON), else text."""
    text = body.decode("utf-8", errors="replace")
    if headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# -- the command channel ---------------------------------------------------------------------------


class ChannelRefused(Exception):
    """The WebSocket opening handshake was answered with an HTTP status other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"server answered HTTP {status}")
        self.status = status


class Channel:
    """A WebSocket client on a `Stream`: text messages in and out, driven by callbacks.

    `on_message(text)` gets every text message; `on_close(code)` is called once when the
    connection ends from the server's side or by error (not after a local `close()`).
    Pings are answered by the protocol itself.
    """

    __slots__ = ("_on_close", "_on_message", "_parts", "_proto", "_stream", "open")

    def __init__(
        self,
        stream: Stream,
        url: str,
        on_message: Callable[[str], None],
        on_close: Callable[[int], None],
        max_size: int = 1 << 20,
    ) -> None:
        self._stream = stream
        self._proto: Protocol = ClientProtocol(parse_uri(url), max_size=max_size)
        self._on_message = on_message
        self._on_close = on_close
        self._parts: list[bytes] | None = None  # a fragmented message being put together
        self.open = False

    async def handshake(self) -> None:
        """Send the upgrade request and wait for the answer; raise `ChannelRefused` on a refusal.

        `ClientProtocol` checks the opening handshake; the open channel then runs on a bare
        client-side `Protocol`, because `ClientProtocol` keeps the parsed response (its headers)
        alive for as long as the connection lasts. The response's head is fed to it alone, so
        any frame that came right behind it goes to the frame parser, whole."""
        opening = self._proto
        assert isinstance(opening, ClientProtocol)
        opening.send_request(opening.connect())
        await self._stream.send_all(b"".join(opening.data_to_send()))
        head, rest = bytearray(), b""
        in_body = False  # the head has been fed; what follows belongs to a refusal's body
        while True:
            data = await self._stream.recv()
            if not data:
                opening.receive_eof()
            elif in_body:
                opening.receive_data(data)
            else:
                head += data
                end = head.find(b"\r\n\r\n")
                if end < 0 and len(head) <= _MAX_HEAD:
                    continue
                cut = len(head) if end < 0 else end + 4
                opening.receive_data(bytes(head[:cut]))
                rest, in_body = bytes(head[cut:]), True
                if opening.state is not State.OPEN:  # a refusal: its body follows the head
                    opening.receive_data(rest)
                    rest = b""
            if any(isinstance(e, Response) for e in opening.events_received()):
                break
            if not data:
                raise ConnectionResetError("connection closed during the WebSocket handshake")
        exc = opening.handshake_exc
        if exc is not None:
            self._stream.close()
            if isinstance(exc, InvalidStatus):
                raise ChannelRefused(exc.response.status_code)
            raise exc
        self._proto = Protocol(Side.CLIENT, state=State.OPEN, max_size=opening.max_message_size)
        self.open = True
        self._stream.start_reading(self._received, self._eof)
        if rest:
            self._received(rest)

    def send_text(self, text: str) -> None:
        if self.open and self._proto.state is State.OPEN:
            self._proto.send_text(text.encode())
            self._flush()

    def close(self, code: int = 1000) -> None:
        """Close from this side: a close frame if still open, then the socket. No callback."""
        if self._stream.closed:
            return
        self.open = False
        if self._proto.state is State.OPEN:
            self._proto.send_close(code)
            self._flush()
        self._stream.close()

    def _flush(self) -> None:
        for chunk in self._proto.data_to_send():
            if chunk:
                self._stream.write(chunk)

    def _received(self, data: bytes) -> None:
        self._proto.receive_data(data)
        self._flush()
        self._handle(self._proto.events_received())
        if self._proto.close_expected() or self._proto.state is State.CLOSED:
            self._end()

    def _eof(self) -> None:
        self._proto.receive_eof()
        self._handle(self._proto.events_received())
        self._end()

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.TEXT:
                if event.fin:
                    self._deliver(bytes(event.data))
                else:
                    self._parts = [bytes(event.data)]
            elif event.opcode is Opcode.CONT and self._parts is not None:
                self._parts.append(bytes(event.data))
                if event.fin:
                    data, self._parts = b"".join(self._parts), None
                    self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self.open:
            self._on_message(data.decode("utf-8", errors="replace"))

    def _end(self) -> None:
        if not self.open:
            self._stream.close()
            return
        self.open = False
        self._stream.close()
        received = self._proto.close_rcvd
        self._on_close(received.code if received is not None else ABNORMAL_CLOSURE)
