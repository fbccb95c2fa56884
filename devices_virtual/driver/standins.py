"""Loopback stand-ins for the preconfigured domains (DM-12): real small servers.

- HTTP: `/ncsi.txt` answers "Microsoft NCSI" (www.msftncsi.com), `/generate_204` answers 204
  (www.google.com); any other path 200 (the proxy test site).
- HTTPS with a stand-in CA: the vendor web and support links (www.yealink.com, support.yealink.com).
- SNTP over UDP: time.windows.com and pool.ntp.org; and, on request, a time server of the
  enterprise's own (`add_ntp_host`), as an administrator may configure one (`ntp.server`).
Each server counts what it served (`served`: "ntp" for the preconfigured time servers,
"ntp <host>" for an added one), so tests can see the devices really reached them.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import cast

from devices_virtual.agent.domains import (
    CONNECTIVITY_CHECKS,
    NCSI_BODY,
    NTP_SERVERS,
    PROXY_TEST_HOST,
    VENDOR_LINKS,
)
from devices_virtual.driver import sntp
from devices_virtual.driver.resolver import Resolver
from devices_virtual.driver.standin_ca import standin_certificates
from protocol.tls import client_context, server_context


def _response(path: str) -> bytes:
    if path == "/ncsi.txt":
        status, body = "200 OK", NCSI_BODY
    elif path == "/generate_204":
        status, body = "204 No Content", b""
    else:
        status, body = "200 OK", b"ok"
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _Sntp(asyncio.DatagramProtocol):
    def __init__(
        self, served: Counter[str], key: str = "ntp", clock: Callable[[], float] = time.time
    ) -> None:
        self.served = served
        self.key = key
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = sntp.reply(data, self.clock())
        if answer is not None and self.transport is not None:
            self.served[self.key] += 1
            self.transport.sendto(answer, addr)


class Standins:
    """`clock` is the time the SNTP servers tell (POSIX seconds): the real time, or a test's
    injectable clock, so the devices live on the same clock as the service they talk to."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.served: Counter[str] = Counter()
        self.resolver = Resolver()
        self._servers: list[asyncio.Server] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._extra_udp: list[asyncio.DatagramTransport] = []
        self._dir = tempfile.TemporaryDirectory(prefix="roomtrust-standins-")
        self.ca_file = Path(self._dir.name) / "ca.pem"
        self.client_ssl: ssl.SSLContext | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            self.served[path] += 1
            writer.write(_response(path))
            await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self) -> Standins:
        # a fleet powering up opens a burst of check connections: keep a deep accept queue
        http = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        ca_cert, cert, key = standin_certificates(list(VENDOR_LINKS.values()))
        self.ca_file.write_bytes(ca_cert)
        cert_file, key_file = Path(self._dir.name) / "s.pem", Path(self._dir.name) / "s.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        https = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=server_context(cert_file, key_file), backlog=1024
        )
        self.client_ssl = client_context(self.ca_file)
        self._servers = [http, https]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Sntp(self.served, clock=self.clock), local_addr=("127.0.0.1", 0)
        )
        self._udp = transport
        http_port = http.sockets[0].getsockname()[1]
        https_port = https.sockets[0].getsockname()[1]
        ntp_port = transport.get_extra_info("sockname")[1]
        for host, _path in CONNECTIVITY_CHECKS:
            self.resolver.add(host, "http", http_port)
        self.resolver.add(PROXY_TEST_HOST, "http", http_port)
        for host in VENDOR_LINKS.values():
            self.resolver.add(host, "https", https_port)
        for host in NTP_SERVERS:
            self.resolver.add(host, "ntp", ntp_port)
        return self

    async def add_ntp_host(self, host: str) -> int:
        """Serve SNTP for `host` on a UDP port of its own (answers counted as "ntp <host>") and
        add it to the resolver table; returns the port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Sntp(self.served, f"ntp {host}", self.clock), local_addr=("127.0.0.1", 0)
        )
        self._extra_udp.append(transport)
        port: int = transport.get_extra_info("sockname")[1]
        self.resolver.add(host, "ntp", port)
        return port

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        if self._udp is not None:
            self._udp.close()
        for transport in self._extra_udp:
            transport.close()
        self._dir.cleanup()
