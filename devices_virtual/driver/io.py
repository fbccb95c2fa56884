"""What every virtual device of one driver process shares: the loop clock, the stand-ins and their
resolver table, the connection recorder, and the HTTP clients that need no device certificate."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from devices_virtual.driver import sntp
from devices_virtual.driver.recorder import Connection, Recorder
from devices_virtual.driver.standins import Standins
from services.common.tls import client_context

Log = Callable[[dict[str, Any]], None]


class _SntpClient(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[bytes]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class FleetIO:
    def __init__(
        self,
        standins: Standins,
        recorder: Recorder,
        log: Log | None = None,
        timeout: float = 20.0,
        keepalive_s: float = 5.0,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.standins = standins
        self.resolver = standins.resolver
        self.recorder = recorder
        self.log: Log = log or (lambda _record: None)
        self.timeout = timeout
        self.keepalive_s = keepalive_s
        self.plain = httpx.AsyncClient(timeout=timeout)
        assert standins.client_ssl is not None
        self.vendor = httpx.AsyncClient(verify=standins.client_ssl, timeout=timeout)
        self._verify: dict[str, ssl.SSLContext] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        return self.loop.time() - self.t0

    def loop_time(self, at: float) -> float:
        return self.t0 + at

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def record(
        self, device: str, host: str, port: int, protocol: str, target: str, purpose: str
    ) -> None:
        self.recorder.record(Connection(self.now(), device, host, port, protocol, target, purpose))

    def verify_context(self, ca_file: Path | str) -> ssl.SSLContext:
        """One server-verifying context per CA bundle, shared by every device (no client cert)."""
        key = str(ca_file)
        if key not in self._verify:
            self._verify[key] = client_context(ca_file)
        return self._verify[key]

    def shared_client(self, base_url: str, ca_file: Path | str) -> httpx.AsyncClient:
        """A client without a device certificate: enrollment, registration, user logins."""
        if base_url not in self._clients:
            self._clients[base_url] = httpx.AsyncClient(
                verify=self.verify_context(ca_file), timeout=self.timeout
            )
        return self._clients[base_url]

    def device_client(self, ctx: ssl.SSLContext) -> httpx.AsyncClient:
        """A device's own mutual-TLS client. Idle connections close after `keepalive_s`, so a
        device between heartbeats holds no HTTP connection, only its command channel."""
        limits = httpx.Limits(max_connections=2, keepalive_expiry=self.keepalive_s)
        return httpx.AsyncClient(verify=ctx, timeout=self.timeout, limits=limits)

    async def sntp_query(self, address: str, port: int, timeout: float = 2.0) -> float:
        answer: asyncio.Future[bytes] = self.loop.create_future()
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _SntpClient(answer), remote_addr=(address, port)
        )
        try:
            transport.sendto(sntp.request(time.time()))
            return sntp.server_time(await asyncio.wait_for(answer, timeout))
        finally:
            transport.close()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in [self.plain, self.vendor, *self._clients.values()]:
            await client.aclose()


def tune_for_many_connections() -> None:
    """asyncio's TLS transport keeps a 256 KiB receive buffer per connection; a TLS record is at
    most 16 KiB, so 32 KiB is plenty and an idle device costs far less memory. (uvloop has its
    own TLS transport; this changes nothing there.)"""
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run the driver's main coroutine on uvloop when it is installed, else on asyncio."""
    tune_for_many_connections()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
