"""The region's PSTN gateway process: dial-in calls bridged into conferences (MT-08).

`python -m services.meeting.pstn --region R --home H` runs it on 127.0.0.1. Its trunk API (HTTPS,
the region's gateway token as bearer; it stands in for the carrier's SIP trunk) places a call:

- `POST /v1/calls {"conference_id", "caller", "pin"?}`: the gateway opens the call's phone-side UDP
  port (plain PCMU, as a phone network delivers it) and a conference-side UDP socket, signs in to the
  region's signaling over WSS with the gateway token and the caller's number, and joins the
  conference with the PIN as its password. The answer (once admitted, sent to the lobby or refused)
  is `{"call_id", "state", "participant_id", "phone_media": {"host", "port"}}`.
- `GET /v1/calls`, `GET /v1/calls/{id}`: state and counters; `DELETE /v1/calls/{id}`: hang up.

Each call runs a `PstnBridge`; signaling's `media.keys` and `media.move` reach its endpoint, so the
call follows re-keys and relay failovers like any participant. The ready file is
`<home>/meeting/<region>/pstn/ready.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from media_core.endpoint import Outbound
from protocol.signaling import (
    Admitted,
    Auth,
    ConferenceEnded,
    Error,
    LobbyWaiting,
    MediaKeys,
    MediaMove,
    Rejected,
    Removed,
)
from protocol.signaling_client import SignalingClient
from protocol.tls import server_context
from services.common.api import bearer_token, install_error_handlers
from services.common.ca import RegionCA
from services.common.errors import NotFound, Unauthenticated
from services.common.server import bind_socket, make_server, start_serving, write_ready_file
from services.meeting.process import public_names, region_signaling, start_process
from services.meeting.pstn.bridge import PstnBridge
from services.meeting.relay.files import pstn_token, region_directory

log = logging.getLogger("roomtrust.meeting.pstn")
TICK = 0.020
ANSWER_TIMEOUT = 15.0
KEYS_TIMEOUT = 5.0
KEEP_ENDED = 100


class DialIn(BaseModel):
    conference_id: str = Field(min_length=1, max_length=64)
    caller: str = Field(pattern=r"^\+?[0-9]{3,15}$")
    pin: str | None = Field(default=None, max_length=128)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.on_datagram((addr[0], addr[1]), data)
        except Exception:
            log.exception("datagram from %s could not be handled", addr)


@dataclass(eq=False)
class Call:
    call_id: str
    conference_id: str
    caller: str
    bridge: PstnBridge
    state: str = "dialling"
    participant_id: str | None = None
    reason: str | None = None
    phone: asyncio.DatagramTransport | None = None
    phone_address: tuple[str, int] = ("127.0.0.1", 0)
    conference: asyncio.DatagramTransport | None = None
    signal: SignalingClient | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    keyed: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> dict[str, Any]:
        host, port = self.phone_address
        return {
            "call_id": self.call_id,
            "conference_id": self.conference_id,
            "caller": self.caller,
            "state": self.state,
            "reason": self.reason,
            "participant_id": self.participant_id,
            "encrypted": False,
            "phone_media": {"host": host, "port": port},
            "relay": self.bridge.endpoint.grant.relay_name if self.bridge.endpoint.grant else None,
            "counters": self.bridge.counters.as_dict(),
            "conference_side": self.bridge.endpoint.counters.as_dict(),
        }


class Gateway:
    def __init__(self, home: Path, region: str, signaling_url: str | None = None) -> None:
        self.home = home
        self.region = region
        self.signaling_url = signaling_url
        self.calls: dict[str, Call] = {}

    def signaling(self) -> tuple[str, ssl.SSLContext]:
        return region_signaling(self.home, self.region, self.signaling_url)

    async def dial(self, body: DialIn) -> Call:
        loop = asyncio.get_running_loop()
        call = Call(
            f"call-{secrets.token_hex(6)}",
            body.conference_id,
            body.caller,
            PstnBridge(
                ssrc=secrets.randbits(32),
                phone_ssrc=secrets.randbits(32),
                first_sequence=secrets.randbits(16),
                first_timestamp=secrets.randbits(32),
            ),
        )
        call.phone, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda a, d: self._from_phone(call, a, d)), local_addr=("127.0.0.1", 0)
        )
        call.phone_address = tuple(call.phone.get_extra_info("sockname")[:2])
        call.conference, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(lambda a, d: call.bridge.conference_datagram(a, d, loop.time())),
            local_addr=("127.0.0.1", 0),
        )
        self.calls[call.call_id] = call
        try:
            uri, context = self.signaling()
            call.signal = SignalingClient(uri, context=context, resumable=True)
            token = pstn_token(self.home, self.region)
            await call.signal.connect(Auth(gateway_token=token, caller=body.caller))
            await call.signal.join(body.conference_id, body.pin)
        except (OSError, websockets.WebSocketException) as exc:
            call.state, call.reason = "failed", f"signaling: {exc}"
            await self.hang_up(call)
            return call
        call.tasks.append(asyncio.create_task(self._signaling(call)))
        call.tasks.append(asyncio.create_task(self._ticks(call)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.answered.wait(), ANSWER_TIMEOUT)
            if call.state == "in_conference":  # the keys follow the admission at once
                await asyncio.wait_for(call.keyed.wait(), KEYS_TIMEOUT)
        return call

    def _from_phone(self, call: Call, address: tuple[str, int], data: bytes) -> None:
        self._send(call, call.bridge.phone_datagram(address, data), call.conference)

    @staticmethod
    def _send(call: Call, out: list[Outbound], transport: asyncio.DatagramTransport | None) -> None:
        if transport is not None:
            for address, data in out:
                transport.sendto(data, address)

    async def _signaling(self, call: Call) -> None:
        assert call.signal is not None
        try:
            async for message in call.signal:
                match message:
                    case MediaKeys() | MediaMove():
                        call.bridge.endpoint.handle_message(message.encode())
                        call.keyed.set()
                    case Admitted(participant_id=participant_id):
                        call.state, call.participant_id = "in_conference", participant_id
                        call.answered.set()
                    case LobbyWaiting(participant_id=participant_id):
                        call.state, call.participant_id = "lobby", participant_id
                        call.answered.set()
                    case Error(reason=reason):
                        call.reason = reason or message.TYPE.value
                        if call.state in ("dialling", "lobby"):  # else a refused message only
                            call.state = "refused"
                            call.answered.set()
                    case Rejected(reason=reason):
                        call.reason = reason or message.TYPE.value
                        call.state = "ended"
                        call.answered.set()
                    case Removed() | ConferenceEnded():
                        call.reason = message.TYPE.value
                        call.state = "ended"
                        call.answered.set()
        except (websockets.WebSocketException, OSError, ValueError) as exc:
            call.reason = call.reason or f"signaling: {exc}"
        if call.state not in ("ended", "refused", "failed"):
            call.state = "ended"
        call.answered.set()
        self._release(call)

    async def _ticks(self, call: Call) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * TICK - loop.time()))
            self._send(call, call.bridge.tick(loop.time()), call.phone)

    async def hang_up(self, call: Call) -> None:
        if call.signal is not None and call.signal.ws is not None:
            with contextlib.suppress(Exception):
                await call.signal.leave()
                await call.signal.close()
        if call.state not in ("refused", "failed"):
            call.state = "ended"
        self._release(call)

    def _release(self, call: Call) -> None:
        """Stop the call's tasks (but the one running this) and close its sockets; keep at most
        `KEEP_ENDED` ended calls for the trunk to read."""
        current = asyncio.current_task()
        for task in call.tasks:
            if task is not current:
                task.cancel()
        for transport in (call.phone, call.conference):
            if transport is not None:
                transport.close()
        ended = [c for c in self.calls.values() if c.state in ("ended", "refused", "failed")]
        for old in ended[: max(0, len(ended) - KEEP_ENDED)]:
            self.calls.pop(old.call_id, None)


def build_trunk_app(gateway: Gateway, token: str) -> FastAPI:
    app = FastAPI(title="roomtrust PSTN gateway trunk", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if request.url.path != "/v1/health":
            given = bearer_token(request) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                error = Unauthenticated("the region's gateway token is required", "authorization")
                return JSONResponse(error.as_dict(), status_code=error.status)
        return await call_next(request)

    def find(call_id: str) -> Call:
        call = gateway.calls.get(call_id)
        if call is None:
            raise NotFound("no such call", "call_id")
        return call

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "region": gateway.region, "calls": len(gateway.calls)}

    @app.post("/v1/calls", status_code=201)
    async def dial(body: DialIn) -> dict[str, Any]:
        return (await gateway.dial(body)).view()

    @app.get("/v1/calls")
    async def calls() -> list[dict[str, Any]]:
        return [call.view() for call in gateway.calls.values()]

    @app.get("/v1/calls/{call_id}")
    async def one(call_id: str) -> dict[str, Any]:
        return find(call_id).view()

    @app.delete("/v1/calls/{call_id}")
    async def hang_up(call_id: str) -> dict[str, Any]:
        call = find(call_id)
        await gateway.hang_up(call)
        return call.view()

    return app


async def run_gateway(
    region: str,
    home: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    advertise: str | None = None,
    names: Sequence[str] = (),
    ca: RegionCA | None = None,
    ca_file: Path | None = None,
    signaling_url: str | None = None,
) -> None:
    """`host` is the listen address; the trunk API's certificate carries `advertise` (default
    `host`), `localhost` and `names` (the public host names)."""
    directory = region_directory(home, region) / "pstn"
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    if ca is None or ca_file is None:
        ca_dir = region_directory(home, region) / "ca"
        ca = RegionCA.load_or_create(ca_dir, f"meeting-{region}")
        ca_file = ca_dir / "ca.pem"
    advertise = advertise or host
    cert_names = list(dict.fromkeys([advertise, "localhost", *names]))
    cert_file, key_file = ca.write_server_files(directory, cert_names)
    gateway = Gateway(home, region, signaling_url)
    sock = bind_socket(host, port)
    app = build_trunk_app(gateway, pstn_token(home, region))
    server = make_server(app, server_context(cert_file, key_file))
    try:
        task = await start_serving(server, sock)
        control_port = sock.getsockname()[1]
        write_ready_file(
            ready,
            control_port,
            {
                "region": region,
                "control_url": f"https://{advertise}:{control_port}",
                "ca_file": str(ca_file),
            },
        )
        await task
    finally:
        for call in list(gateway.calls.values()):
            await gateway.hang_up(call)
        ready.unlink(missing_ok=True)


def ready_file(home: Path, region: str) -> Path:
    return region_directory(home, region) / "pstn" / "ready.json"


def main(argv: list[str] | None = None, prog: str = "services.meeting.pstn") -> None:
    """Its settings come from ROOMTRUST_* (listen host and port, public host names, signaling URL,
    the region CA and gateway token files); the options override them."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--region", required=True)
    parser.add_argument("--home", type=Path, default=None, help="default: ROOMTRUST_HOME")
    parser.add_argument("--port", type=int, default=None, help="trunk API port [ROOMTRUST_PORT]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    start = start_process(prog, args.region, args.home)
    log.info("PSTN gateway pid %d", os.getpid())
    gateway = run_gateway(
        args.region,
        start.home,
        host=start.host,
        port=start.port(args.port),
        advertise=start.advertised,
        names=public_names(start.settings),
        ca=start.ca,
        ca_file=start.ca_file,
        signaling_url=start.settings.signaling_url,
    )
    try:
        import uvloop

        uvloop.run(gateway)
    except ImportError:
        asyncio.run(gateway)
