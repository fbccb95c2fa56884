"""What every virtual device of one driver process shares: the loop clock, one timer heap, the
stand-ins and their resolver table, the connection recorder, the TLS contexts that hold no device
certificate (one per CA), and the httpx clients of the meeting clients."""

from __future__ import annotations

import asyncio
import heapq
import resource
import ssl
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from devices_virtual.driver import sntp
from devices_virtual.driver.recorder import Connection, Recorder
from devices_virtual.driver.standins import Standins
from protocol.tls import client_context

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


class Timer:
    """One entry of the `TimerHeap`; `cancel()` leaves it in the heap, inert."""

    __slots__ = ("arg", "callback", "seq", "when")

    def __init__(self, when: float, seq: int, callback: Callable[[str], None], arg: str) -> None:
        self.when = when
        self.seq = seq
        self.callback: Callable[[str], None] | None = callback
        self.arg = arg

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        self.callback = None


class TimerHeap:
    """Every device timer of a driver process on one heap behind a single loop timer.

    A device has a few timers (heartbeat, telemetry, NTP) that fire every 30 s to an hour; one heap
    entry costs less than a loop timer handle each, and the loop keeps one timer, not thousands.
    Timers due at the same moment fire in the order they were started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Timer] = []
        self._seq = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed = float("inf")

    def __len__(self) -> int:
        return sum(t.callback is not None for t in self._heap)

    def call_at(self, when: float, callback: Callable[[str], None], arg: str) -> Timer:
        """Call `callback(arg)` at loop time `when`."""
        self._seq += 1
        timer = Timer(when, self._seq, callback, arg)
        heapq.heappush(self._heap, timer)
        if when < self._armed:
            self._arm(when)
        return timer

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = when
        self._handle = self._loop.call_at(when, self._run)

    def _run(self) -> None:
        self._handle, self._armed = None, float("inf")
        heap = self._heap
        due = self._loop.time() + 0.001  # the loop's timers have millisecond resolution
        while heap and heap[0].when <= due:
            timer = heapq.heappop(heap)
            callback, timer.callback = timer.callback, None
            if callback is None:
                continue
            try:
                callback(timer.arg)
            except Exception as exc:  # one device's failure must not stop the others' timers
                self._loop.call_exception_handler(
                    {"message": "device timer callback failed", "exception": exc}
                )
        while heap and heap[0].callback is None:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0].when)

    def cancel_all(self) -> None:
        for timer in self._heap:
            timer.callback = None
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._armed = None, float("inf")


class FleetIO:
    def __init__(
        self,
        standins: Standins,
        recorder: Recorder,
        log: Log | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.standins = standins
        self.resolver = standins.resolver
        self.recorder = recorder
        self.log: Log = log or (lambda _record: None)
        self.timeout = timeout
        assert standins.client_ssl is not None
        self.vendor_context: ssl.SSLContext = standins.client_ssl
        self.timers = TimerHeap(self.loop)
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
        """An httpx client without a client certificate, for the meeting clients' logins and
        registrations (a handful per fleet; devices use `wire` instead)."""
        if base_url not in self._clients:
            self._clients[base_url] = httpx.AsyncClient(
                verify=self.verify_context(ca_file), timeout=self.timeout
            )
        return self._clients[base_url]

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
        self.timers.cancel_all()
        for client in self._clients.values():
            await client.aclose()


def tune_for_many_connections() -> None:
    """asyncio's TLS transport keeps a 256 KiB receive buffer per connection; a TLS record is at
    most 16 KiB, so 32 KiB is plenty (it matters to the meeting clients, which use transports;
    devices use bare sockets). uvloop has its own TLS transport; this changes nothing there."""
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft limit of open files towards `wanted` (at most the hard limit): every idle
    device holds one socket. Returns the soft limit now in force; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run the driver's main coroutine on uvloop when it is installed, else on asyncio."""
    tune_for_many_connections()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
