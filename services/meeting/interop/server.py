"""The interop gateway process: the asyncio driver around `SipCore` and `H323Core` (MT-07).

`python -m services.meeting.interop --region R --home H` runs it on 127.0.0.1 with two listeners,
both TLS (1.2 or 1.3, ECDHE with AEAD suites: `services.common.tls.server_context`) with a server
certificate from the region's CA (`<home>/meeting/R/ca`):

- SIP over TLS (`--sip-port`, 5061 in a deployment; dynamic by default);
- H.225.0 call signaling over TLS (`--h323-port`, 1300 in a deployment, the H.323 secure call
  signalling port; dynamic by default).

There is no plain TCP or UDP SIP listener and no plain H.225.0 port (1720): the process opens no
other listening socket. UDP sockets exist only while a call is up, one towards the caller (SRTP)
and one towards the conference's relay (SRTP).

For each admitted call the gateway signs in to the region's signaling over WSS with the region's
interop token (`<home>/meeting/R/interop-gateway.token`), the protocol and the caller, and joins
the conference with the password the caller dialled; the meeting's lobby and password rules and
its CDR apply as to any participant. The ready file is `<home>/meeting/R/interop/ready.json` with
`sip_port`, `h323_port`, `host` and `ca_file`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

import websockets

from protocol import signaling
from protocol.errors import ErrorCode
from protocol.signaling_client import SignalingClient
from services.common.ca import RegionCA
from services.common.server import write_ready_file
from services.common.tls import server_context
from services.meeting.interop.bridge import SrtpBridge
from services.meeting.interop.common import (
    Action,
    Admitted,
    CloseConnection,
    Connected,
    ConnectionLost,
    DataReceived,
    Decision,
    Ended,
    Event,
    GatewayCore,
    JoinConference,
    LeaveConference,
    Lobby,
    MediaOpened,
    OpenMedia,
    Refusal,
    Refused,
    Send,
    StartMedia,
    refusal_of,
)
from services.meeting.interop.h323_core import H323Core
from services.meeting.interop.sip_core import SipCore
from services.meeting.process import public_names, region_signaling, start_process
from services.meeting.relay.files import interop_token, region_directory

log = logging.getLogger("roomtrust.meeting.interop")
Address = tuple[str, int]


def interop_directory(home: Path, region: str) -> Path:
    return region_directory(home, region) / "interop"


def ready_file(home: Path, region: str) -> Path:
    return interop_directory(home, region) / "ready.json"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.on_datagram((addr[0], addr[1]), data)
        except Exception:
            log.exception("datagram from %s could not be handled", addr)


class _Signaling(asyncio.Protocol):
    """One TLS connection on a listener; bytes go to the listener's core, its actions come back."""

    def __init__(self, gateway: Gateway, core: GatewayCore) -> None:
        self.gateway = gateway
        self.core = core
        self.conn = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn = self.gateway.attach(transport)
        tls = transport.get_extra_info("ssl_object")
        peer = transport.get_extra_info("peername") or ("", 0)
        version = tls.version() if isinstance(tls, ssl.SSLObject) else "none"
        self.gateway.feed(self.core, Connected(self.conn, (peer[0], peer[1]), version or ""))

    def data_received(self, data: bytes) -> None:
        self.gateway.feed(self.core, DataReceived(self.conn, data))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.detach(self.conn)
        self.gateway.feed(self.core, ConnectionLost(self.conn))


@dataclass(eq=False)
class CallIO:
    call_id: str
    core: GatewayCore  # the core that owns the call: its media and conference events go there
    caller_side: asyncio.DatagramTransport | None = None
    conference_side: asyncio.DatagramTransport | None = None
    bridge: SrtpBridge | None = None
    grants: list[dict[str, Any]] = field(default_factory=list)
    signaling: SignalingClient | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    admitted: bool = False


class Gateway:
    def __init__(
        self, home: Path, region: str, host: str, sip_port: int, signaling_url: str | None = None
    ) -> None:
        self.home = home
        self.region = region
        self.host = host
        self.signaling_url = signaling_url
        self.sip = SipCore(host, sip_port, secrets.token_bytes)
        self.h323 = H323Core(secrets.token_bytes)
        self.transports: dict[int, asyncio.Transport] = {}  # connection ids span both listeners
        self.calls: dict[str, CallIO] = {}
        self.decisions: list[Decision] = []
        self._next = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- connections ---------------------------------------------------------------------------

    def attach(self, transport: asyncio.Transport) -> int:
        self._next += 1
        self.transports[self._next] = transport
        return self._next

    def detach(self, conn: int) -> None:
        self.transports.pop(conn, None)

    def feed(self, core: GatewayCore, event: Event) -> None:
        for action in core.handle(event):
            self._act(core, action)

    def _act(self, core: GatewayCore, action: Action) -> None:
        match action:
            case Send():
                transport = self.transports.get(action.conn)
                if transport is not None and not transport.is_closing():
                    transport.write(action.data)
            case CloseConnection():
                transport = self.transports.get(action.conn)
                if transport is not None:
                    transport.close()
            case OpenMedia():
                call = self.calls.setdefault(action.call_id, CallIO(action.call_id, core))
                self._spawn(call, self._open_media(call))
            case JoinConference():
                call = self.calls.setdefault(action.call_id, CallIO(action.call_id, core))
                self._spawn(call, self._join(call, action))
            case StartMedia():
                self._start_media(action)
            case LeaveConference():
                gone = self.calls.pop(action.call_id, None)
                if gone is not None:
                    task = asyncio.get_running_loop().create_task(self._hang_up(gone))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            case Decision():
                self.decisions.append(action)
                del self.decisions[:-200]
                log.info(
                    "%s call %s: %s (%s) %s",
                    action.protocol,
                    action.call_id or "-",
                    action.outcome,
                    action.code,
                    action.reason,
                )
            case _:
                assert_never(action)

    @staticmethod
    def _spawn(call: CallIO, coroutine: Any) -> None:
        call.tasks.append(asyncio.get_running_loop().create_task(coroutine))

    def _live(self, call: CallIO) -> bool:
        return self.calls.get(call.call_id) is call

    # -- media ---------------------------------------------------------------------------------

    async def _open_media(self, call: CallIO) -> None:
        loop = asyncio.get_running_loop()
        caller_side, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda a, d: self._from_caller(call, a, d)),
            local_addr=(self.host, 0),
        )
        conference_side, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda a, d: self._from_conference(call, a, d)),
            local_addr=(self.host, 0),
        )
        if not self._live(call):  # hung up while the ports were opening
            caller_side.close()
            conference_side.close()
            return
        call.caller_side, call.conference_side = caller_side, conference_side
        host, port = caller_side.get_extra_info("sockname")[:2]
        self.feed(call.core, MediaOpened(call.call_id, host, port))

    def _from_caller(self, call: CallIO, address: Address, data: bytes) -> None:
        if call.bridge is not None and call.conference_side is not None:
            for target, out in call.bridge.caller_datagram(address, data):
                call.conference_side.sendto(out, target)

    def _from_conference(self, call: CallIO, address: Address, data: bytes) -> None:
        if call.bridge is not None and call.caller_side is not None:
            now = asyncio.get_running_loop().time()
            for target, out in call.bridge.conference_datagram(address, data, now):
                call.caller_side.sendto(out, target)

    def _start_media(self, action: StartMedia) -> None:
        call = self.calls.get(action.call_id)
        if call is None:
            return
        if call.bridge is not None:
            call.bridge.set_caller_keys(action.from_caller, action.to_caller, action.caller)
            return
        call.bridge = SrtpBridge(
            secrets.randbits(32), action.from_caller, action.to_caller, action.caller
        )
        for grant in call.grants:
            call.bridge.endpoint.handle_message(grant)
        call.grants.clear()

    # -- the conference ------------------------------------------------------------------------

    def signaling_uri(self) -> tuple[str, ssl.SSLContext]:
        return region_signaling(self.home, self.region, self.signaling_url)

    async def _join(self, call: CallIO, action: JoinConference) -> None:
        try:
            uri, context = self.signaling_uri()
            call.signaling = client = SignalingClient(
                uri, context=context, close_timeout=2.0, resumable=True
            )
            auth = signaling.Auth(
                interop_token=interop_token(self.home, self.region),
                protocol=action.protocol.value,
                caller=action.caller,
                name=action.display_name,
            )
            await client.connect(auth)
            await client.join(action.conference_id, action.password)
            if not self._live(call):
                await client.close()
                return
        except (OSError, ValueError, websockets.WebSocketException) as exc:
            refused = Refused(
                call.call_id, Refusal.UNAVAILABLE, str(exc) or ErrorCode.UNAVAILABLE.value
            )
            self.feed(call.core, refused)
            return
        await self._listen(call, client)

    async def _listen(self, call: CallIO, client: SignalingClient) -> None:
        try:
            async for message in client:
                match message:
                    case signaling.MediaKeys() | signaling.MediaMove():
                        if call.bridge is not None:
                            call.bridge.endpoint.handle_message(message.encode())
                        else:
                            call.grants.append(message.encode())
                    case signaling.LobbyWaiting():
                        self.feed(call.core, Lobby(call.call_id))
                    case signaling.Admitted():
                        call.admitted = True
                        self.feed(call.core, Admitted(call.call_id))
                    case signaling.Error() if not call.admitted:
                        text = message.reason or message.error.value
                        self.feed(call.core, Refused(call.call_id, refusal_of(message.error), text))
                        return
                    case signaling.Rejected():
                        refused = Refused(call.call_id, Refusal.REJECTED, message.TYPE.value)
                        self.feed(call.core, refused)
                        return
                    case signaling.Removed() | signaling.ConferenceEnded():
                        self.feed(call.core, Ended(call.call_id, message.TYPE.value))
                        return
                    case _:
                        pass  # the roster, chat, notices and the like change nothing for the call
        except (websockets.WebSocketException, OSError, ValueError) as exc:
            self.feed(call.core, Ended(call.call_id, f"signaling: {exc}"))
            return
        self.feed(call.core, Ended(call.call_id, _closed(client.close_code)))

    async def _hang_up(self, call: CallIO) -> None:
        current = asyncio.current_task()
        for task in call.tasks:
            if task is not current:
                task.cancel()
        if call.signaling is not None:
            with contextlib.suppress(Exception):
                await call.signaling.leave()
                await call.signaling.close()
        for transport in (call.caller_side, call.conference_side):
            if transport is not None:
                transport.close()

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self._hang_up(call)
        self.calls.clear()
        for transport in list(self.transports.values()):
            transport.close()


def _closed(code: int | None) -> str:
    """Why the call ends when the meeting's signaling closed without a word about the call."""
    if code in (1000, 1001):
        return "the meeting's signaling closed"
    if code is None:
        return "signaling: closed without a close frame"
    return f"signaling: closed with code {code}"


def _tls(
    home: Path, region: str, names: Sequence[str], ca: RegionCA | None, ca_file: Path | None
) -> tuple[ssl.SSLContext, Path]:
    directory = interop_directory(home, region)
    directory.mkdir(parents=True, exist_ok=True)
    if ca is None or ca_file is None:
        ca_dir = region_directory(home, region) / "ca"
        ca = RegionCA.load_or_create(ca_dir, f"meeting-{region}")
        ca_file = ca_dir / "ca.pem"
    cert_file, key_file = ca.write_server_files(directory, list(dict.fromkeys(names)))
    return server_context(cert_file, key_file), ca_file


async def run_gateway(
    region: str,
    home: Path,
    host: str = "127.0.0.1",
    sip_port: int = 0,
    h323_port: int = 0,
    *,
    advertise: str | None = None,
    names: Sequence[str] = (),
    ca: RegionCA | None = None,
    ca_file: Path | None = None,
    signaling_url: str | None = None,
) -> None:
    """`host` is the listen address; `advertise` (default `host`) the one SIP messages name and
    the certificate carries, with `localhost` and `names` (the public host names)."""
    loop = asyncio.get_running_loop()
    advertise = advertise or host
    ctx, ca_file = _tls(home, region, [advertise, "localhost", *names], ca, ca_file)
    ready = ready_file(home, region)
    ready.unlink(missing_ok=True)
    holder: list[Gateway] = []
    sip_server = await loop.create_server(
        lambda: _Signaling(holder[0], holder[0].sip), host, sip_port, ssl=ctx
    )
    h323_server = await loop.create_server(
        lambda: _Signaling(holder[0], holder[0].h323), host, h323_port, ssl=ctx
    )
    actual_sip = sip_server.sockets[0].getsockname()[1]
    actual_h323 = h323_server.sockets[0].getsockname()[1]
    gateway = Gateway(home, region, advertise, actual_sip, signaling_url)
    holder.append(gateway)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    interop_token(home, region)  # made now if the region has none yet
    write_ready_file(
        ready,
        actual_sip,
        {
            "region": region,
            "host": advertise,
            "sip_port": actual_sip,
            "h323_port": actual_h323,
            "ca_file": str(ca_file),
        },
    )
    log.info("interop gateway for %s: SIP TLS %d, H.323 TLS %d", region, actual_sip, actual_h323)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(ready.read_text()).get("pid") == os.getpid():
                ready.unlink()  # only our own: a newer gateway may have written it since
        sip_server.close()
        h323_server.close()
        await gateway.close()


def main(argv: list[str] | None = None, prog: str = "services.meeting.interop") -> None:
    """Its settings come from ROOMTRUST_* (listen host, SIP and H.323 ports, public host names,
    signaling URL, the region CA and gateway token files); the options override them."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--region", required=True)
    parser.add_argument("--home", type=Path, default=None, help="default: ROOMTRUST_HOME")
    parser.add_argument("--host", default=None, help="listen address [ROOMTRUST_HOST]")
    parser.add_argument(
        "--sip-port", type=int, default=None, help="SIP TLS port [ROOMTRUST_SIP_PORT]"
    )
    parser.add_argument(
        "--h323-port", type=int, default=None, help="H.225.0 TLS port [ROOMTRUST_H323_PORT]"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start = start_process(prog, args.region, args.home)
    settings = start.settings
    log.info("interop gateway pid %d", os.getpid())
    host = args.host if args.host is not None else start.host
    asyncio.run(
        run_gateway(
            args.region,
            start.home,
            host,
            args.sip_port if args.sip_port is not None else settings.sip_port,
            args.h323_port if args.h323_port is not None else settings.h323_port,
            advertise=settings.advertise_host
            or (host if args.host is not None else start.advertised),
            names=public_names(settings),
            ca=start.ca,
            ca_file=start.ca_file,
            signaling_url=settings.signaling_url,
        )
    )
