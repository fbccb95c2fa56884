"""The gevent network of the Locust users: HTTPS with geventhttpclient, WSS with the sync client of
`websockets` (its reader thread is a greenlet under Locust's monkey-patching), and timers.

TLS is the project's own: `services.common.tls.client_context` with the region's CA, TLS 1.2 or
higher, and the device's own certificate for mutual TLS. Each device keeps its own keep-alive
connection (its certificate is its identity); requests without a client certificate (enrollment,
logins, administrators) share one pool per region.

Import this only in a Locust process (it needs gevent's monkey-patching in place).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
from geventhttpclient import HTTPClient
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from load.client.driver import Reply, TlsIdentity, TransportError
from protocol.tls import client_context

_JSON = {"content-type": "application/json"}


class _Socket:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except (ConnectionClosed, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

    def close(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(code)


class GeventNetwork:
    """HTTPS and WSS towards the regions whose CA certificates it was given (origin -> PEM)."""

    def __init__(self, timeout: float = 15.0, shared_concurrency: int = 64) -> None:
        self.timeout = timeout
        self.shared_concurrency = shared_concurrency
        self._dir = Path(tempfile.mkdtemp(prefix="roomtrust-load-ca-"))
        atexit.register(shutil.rmtree, self._dir, ignore_errors=True)
        self._ca_files: dict[str, Path] = {}
        self._verify: dict[str, ssl.SSLContext] = {}
        self._shared: dict[str, HTTPClient] = {}
        self._own: dict[tuple[str, str], tuple[HTTPClient, ssl.SSLContext]] = {}
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}

    def trust(self, url: str, ca_pem: str) -> None:
        """Trust `ca_pem` for the region at `url` (and its WSS endpoints)."""
        origin = _origin(url)
        if origin in self._ca_files:
            return
        path = self._dir / f"ca-{len(self._ca_files)}.pem"
        path.write_text(ca_pem)
        self._ca_files[origin] = path
        self._ca_files[origin.replace("https://", "wss://", 1)] = path

    def _ca(self, origin: str) -> Path:
        try:
            return self._ca_files[origin]
        except KeyError:
            raise TransportError(f"no CA certificate for {origin}") from None

    def context(self, origin: str, tls: TlsIdentity | None) -> ssl.SSLContext:
        if tls is None:
            if origin not in self._verify:
                self._verify[origin] = client_context(self._ca(origin))
            return self._verify[origin]
        key = (origin, tls.key)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = client_context(self._ca(origin), tls.cert_file, tls.key_file)
            self._contexts[key] = ctx
        return ctx

    def _client(self, origin: str, tls: TlsIdentity | None) -> HTTPClient:
        parts = urlsplit(origin)
        host, port = parts.hostname or "", parts.port or 443
        if tls is None:
            client = self._shared.get(origin)
            if client is None:
                ctx = self.context(origin, None)
                client = self._shared[origin] = HTTPClient(
                    host,
                    port,
                    ssl=True,
                    ssl_context_factory=lambda **_kw: ctx,
                    concurrency=self.shared_concurrency,
                    connection_timeout=self.timeout,
                    network_timeout=self.timeout,
                )
            return client
        key = (origin, tls.key)
        own = self._own.get(key)
        if own is None:
            ctx = self.context(origin, tls)
            client = HTTPClient(
                host,
                port,
                ssl=True,
                ssl_context_factory=lambda **_kw: ctx,
                concurrency=2,
                connection_timeout=self.timeout,
                network_timeout=self.timeout,
            )
            own = self._own[key] = (client, ctx)
        return own[0]

    def http(
        self, method: str, url: str, body: Any, *, tls: TlsIdentity | None, bearer: str | None
    ) -> Reply:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._client(origin, tls)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = dict(_JSON) if body is not None else {}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        data = json.dumps(body).encode() if body is not None else b""
        try:
            response = client.request(method, path, body=data, headers=headers)
            try:
                raw = response.read()
            finally:
                response.release()
        except (OSError, ssl.SSLError, HTTPException, gevent.Timeout) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        answer: Any = raw
        ctype = response.get("content-type") or ""
        if isinstance(ctype, list):
            ctype = ctype[0]
        if ctype.startswith("application/json"):
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = raw.decode(errors="replace")
        return Reply(response.status_code, answer, len(raw))

    def websocket(
        self,
        url: str,
        *,
        tls: TlsIdentity | None,
        bearer: str | None,
        on_message: Callable[[str], None],
        on_close: Callable[[int], None],
    ) -> _Socket:
        origin = _origin(url)
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        try:
            ws = connect(
                url,
                ssl=self.context(origin, tls),
                additional_headers=headers,
                compression=None,
                proxy=None,
                open_timeout=self.timeout,
                ping_interval=None,
                close_timeout=2,
                max_queue=64,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            error = TransportError(f"WSS refused: HTTP {status}", code=4000 + status)
            raise error from None
        except (WebSocketException, OSError, ssl.SSLError, TimeoutError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

        def read() -> None:
            code = 1006
            try:
                for raw in ws:
                    on_message(raw if isinstance(raw, str) else raw.decode(errors="replace"))
                code = ws.close_code or 1000
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
            except (OSError, ssl.SSLError):
                code = 1006
            on_close(code)

        gevent.spawn(read)
        return _Socket(ws)

    def forget(self, tls: TlsIdentity) -> None:
        for key in [k for k in self._own if k[1] == tls.key]:
            client, _ctx = self._own.pop(key)
            client.close()
        for key in [k for k in self._contexts if k[1] == tls.key]:
            del self._contexts[key]

    def close(self) -> None:
        for client in self._shared.values():
            client.close()
        for client, _ctx in self._own.values():
            client.close()
        self._shared.clear()
        self._own.clear()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class GeventTimers:
    def start(self, delay: float, callback: Callable[[], None]) -> object:
        return gevent.spawn_later(delay, callback)

    def cancel(self, handle: object) -> None:
        if isinstance(handle, gevent.Greenlet):
            handle.kill(block=False)


class Changes:
    """Wakes whoever waits for a driver's state to change (pass `notify` as `on_change`)."""

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def notify(self) -> None:
        self._event.set()

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block this greenlet until `ready()` holds, re-checked after every change."""
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._event.clear()
            self._event.wait(left)
        return True
