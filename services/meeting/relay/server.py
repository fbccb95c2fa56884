"""The relay process: UDP media on 127.0.0.1 around `RelayCore`, and the TLS control API.

Start-up: load the meeting region's CA (made if absent) and issue this relay a server certificate,
read (or make) the region's control token, bind the UDP media socket and the control socket on
dynamic ports, and write `ready.json` once both accept traffic. The ready file names the pid, the
control port (`port`), `media_port`, `control_url` and `ca_file`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any, cast

from media_core.relay_core import Address, RelayCore
from services.common.ca import RegionCA
from services.common.server import bind_socket, make_server, start_serving, write_ready_file
from services.common.tls import server_context
from services.meeting.process import ANY_ADDRESS, start_process
from services.meeting.relay.control import RelayState, build_control_app
from services.meeting.relay.files import control_token, region_directory, relay_directory
from services.meeting.relay.registry import registers, start_registration

log = logging.getLogger("roomtrust.meeting.relay")
RECEIVE_BUFFER = 4 << 20
PR_SET_PDEATHSIG = 1


class RelayProtocol(asyncio.DatagramProtocol):
    """Hands every datagram to the core and sends what it returns; never lets one packet kill it."""

    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport, but behaves as one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            for address, out in self.state.core.datagram_received((addr[0], addr[1]), data):
                transport.sendto(out, address)
        except Exception:
            self.state.internal_errors += 1
            log.exception("datagram from %s could not be handled", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a participant's port went away) say nothing about the relay's own health.
        log.debug("UDP error: %s", exc)


def media_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def run_relay(
    region: str,
    home: Path,
    name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    media_port: int = 0,
    *,
    advertise: str | None = None,
    media_host: str | None = None,
    ca: RegionCA | None = None,
    ca_file: Path | None = None,
) -> None:
    """`host` is the listen address; `advertise` the one signaling reaches the control API on (the
    control URL, and the certificate's name) and `media_host` the one participants send media to
    (both default to `host`). `ca`/`ca_file` are the region CA (default: the one under `home`)."""
    directory = relay_directory(home, region, name)
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    if ca is None or ca_file is None:
        ca_dir = region_directory(home, region) / "ca"
        ca = RegionCA.load_or_create(ca_dir, f"meeting-{region}")
        ca_file = ca_dir / "ca.pem"
    advertise = advertise or host
    names = list(dict.fromkeys([advertise, "localhost"]))
    cert_file, key_file = ca.write_server_files(directory, names)

    loop = asyncio.get_running_loop()
    udp = media_socket(host, media_port)
    media_address: Address = udp.getsockname()
    state = RelayState(
        core=RelayCore(),
        name=name,
        region=region,
        media_host=media_host
        or (advertise if media_address[0] in ANY_ADDRESS else media_address[0]),
        media_port=media_address[1],
        token=control_token(home, region),
    )
    transport, _ = await loop.create_datagram_endpoint(lambda: RelayProtocol(state), sock=udp)

    control_sock = bind_socket(host, port)
    server = make_server(build_control_app(state), server_context(cert_file, key_file))
    handle_exit = server.handle_exit

    def stop_heartbeats(sig: int, frame: Any) -> None:
        state.stopping = True  # ends every heartbeat stream, so shutdown need not wait for them
        handle_exit(sig, frame)

    server.handle_exit = stop_heartbeats  # type: ignore[method-assign]
    try:
        task = await start_serving(server, control_sock)
        control_port = control_sock.getsockname()[1]
        write_ready_file(
            ready,
            control_port,
            {
                "name": name,
                "region": region,
                "media_host": state.media_host,
                "media_port": state.media_port,
                "control_url": f"https://{advertise}:{control_port}",
                "ca_file": str(ca_file),
            },
        )
        await task
    finally:
        transport.close()
        ready.unlink(missing_ok=True)


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM when the starting process ends (Linux), and end now if it
    already has: a replacement relay belongs to the region process that started it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit("the process that started this relay has ended")


def main(argv: list[str] | None = None, prog: str = "services.meeting.relay") -> None:
    """Its settings come from ROOMTRUST_* (listen host and port, the advertised and media hosts,
    the media port, the region CA and control token files); the options override them."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--region", required=True)
    parser.add_argument("--home", type=Path, default=None, help="default: ROOMTRUST_HOME")
    parser.add_argument("--name", default=None, help="relay name (default relay-<pid>)")
    parser.add_argument("--port", type=int, default=None, help="control port [ROOMTRUST_PORT]")
    parser.add_argument(
        "--media-port", type=int, default=None, help="UDP media port [ROOMTRUST_MEDIA_PORT]"
    )
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="end when this process (the starter) ends"
    )
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    start = start_process(prog, args.region, args.home)
    settings = start.settings
    name = args.name or f"relay-{os.getpid()}"
    if registers(settings):
        ready = relay_directory(start.home, args.region, name) / "ready.json"
        start_registration(settings, start.home, args.region, ready, start.ca_file)
    media_port = args.media_port if args.media_port is not None else settings.media_port
    relay = run_relay(
        args.region,
        start.home,
        name,
        host=start.host,
        port=start.port(args.port),
        media_port=media_port,
        advertise=start.advertised,
        media_host=settings.media_host,
        ca=start.ca,
        ca_file=start.ca_file,
    )
    try:
        import uvloop

        uvloop.run(relay)
    except ImportError:
        asyncio.run(relay)
