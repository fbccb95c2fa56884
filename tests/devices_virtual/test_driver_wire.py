"""The driver's lean connections and timer heap, against loopback servers (no DM stack needed):
HTTP/1.1 over TLS with h11, the WebSocket command channel (messages both ways, pings answered,
close codes, a refused upgrade), TLS session resumption, and timers sharing one loop timer."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.utils import accept_key

from devices_virtual.driver.io import TimerHeap
from devices_virtual.driver.wire import (
    Channel,
    ChannelRefused,
    HttpError,
    Stream,
    decode_body,
    http_request,
)
from services.common.ca import RegionCA
from services.common.tls import client_context, server_context

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    ca = RegionCA.create("wire")
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.cert_pem)
    for name, pair in {
        "server": ca.issue_server_cert(["127.0.0.1"]),
        "device": ca.issue_client_cert("02:00:00:00:00:01", "SN1"),
    }.items():
        files[name], files[f"{name}_key"] = folder / f"{name}.pem", folder / f"{name}.key"
        files[name].write_bytes(pair[0])
        files[f"{name}_key"].write_bytes(pair[1])
    yield files


def _server_ctx(pki: dict[str, Path]) -> ssl.SSLContext:
    ctx = server_context(pki["server"], pki["server_key"], pki["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _device_ctx(pki: dict[str, Path]) -> ssl.SSLContext:
    return client_context(pki["ca"], pki["device"], pki["device_key"])


@pytest.fixture
async def http_server(pki: dict[str, Path]) -> AsyncIterator[tuple[int, list[dict[str, object]]]]:
    """A tiny HTTPS server: echoes the request (and the client certificate's subject) as JSON."""
    seen: list[dict[str, object]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        peer = writer.get_extra_info("ssl_object").getpeercert()
        seen.append({"line": head[0], "headers": headers, "body": body.decode()})
        answer = json.dumps({"line": head[0], "subject": peer["subject"] if peer else None})
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(answer)}\r\nconnection: close\r\n\r\n".encode()
            + answer.encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=_server_ctx(pki))
    yield server.sockets[0].getsockname()[1], seen
    server.close()
    await server.wait_closed()


async def test_an_http_request_over_mutual_tls(
    pki: dict[str, Path], http_server: tuple[int, list[dict[str, object]]]
) -> None:
    port, seen = http_server
    loop = asyncio.get_running_loop()
    ctx = _device_ctx(pki)
    stream = await Stream.open(loop, "127.0.0.1", port, ctx, "127.0.0.1")
    status, headers, body = await http_request(
        stream, "POST", f"127.0.0.1:{port}", "/v1/device/heartbeat?x=1", {"status": "online"}
    )
    session = stream.resumable_session
    stream.close()
    assert status == 200
    answer = decode_body(headers, body)
    assert answer["line"] == "POST /v1/device/heartbeat?x=1 HTTP/1.1"
    assert ["commonName", "02:00:00:00:00:01"] in [list(p) for r in answer["subject"] for p in r]
    assert json.loads(str(seen[0]["body"])) == {"status": "online"}
    assert seen[0]["headers"]["connection"] == "close"  # type: ignore[index]
    # the next connection resumes the session, and the server still knows the device
    assert session is not None
    again = await Stream.open(loop, "127.0.0.1", port, ctx, "127.0.0.1", session)
    assert again.ssl_object is not None and again.ssl_object.session_reused
    status, headers, body = await http_request(again, "GET", f"127.0.0.1:{port}", "/")
    again.close()
    assert status == 200 and decode_body(headers, body)["subject"] == answer["subject"]


async def test_a_server_that_refuses_tls_fails_the_request(
    pki: dict[str, Path], http_server: tuple[int, list[dict[str, object]]]
) -> None:
    port, _ = http_server
    stranger = client_context(pki["ca"])  # no client certificate: the server requires one
    # TLS 1.3 finishes the client's handshake first; the refusal arrives as an alert or an EOF
    with pytest.raises((ssl.SSLError, ConnectionError, HttpError)):
        stream = await Stream.open(asyncio.get_running_loop(), "127.0.0.1", port, stranger)
        await http_request(stream, "GET", "x", "/")


@pytest.fixture
async def ws_server(pki: dict[str, Path]) -> AsyncIterator[tuple[int, list[object]]]:
    """A WebSocket server: refuses /refused with 403, otherwise greets, echoes and pings."""
    got: list[object] = []

    def gate(_conn: ServerConnection, request: Request) -> Response | None:
        if request.path == "/refused":
            return Response(403, "Forbidden", Headers(), b"revoked")
        return None

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "command", "kind": "config"}))
        await ws.ping()
        async for message in ws:
            got.append(json.loads(message))
            if got[-1] == {"bye": True}:
                await ws.close(4003, "revoked")
                return
            await ws.send(message)

    async with serve(
        handler, "127.0.0.1", 0, ssl=_server_ctx(pki), process_request=gate, ping_interval=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield port, got


async def test_the_command_channel(
    pki: dict[str, Path], ws_server: tuple[int, list[object]]
) -> None:
    port, got = ws_server
    loop = asyncio.get_running_loop()
    messages: list[str] = []
    closed: asyncio.Future[int] = loop.create_future()
    stream = await Stream.open(loop, "127.0.0.1", port, _device_ctx(pki), "127.0.0.1")
    url = f"wss://127.0.0.1:{port}/v1/device/commands"
    channel = Channel(stream, url, messages.append, closed.set_result)
    await channel.handshake()
    assert channel.open
    channel.send_text(json.dumps({"type": "ack", "command_id": "c1"}))
    for _ in range(100):
        if len(messages) >= 2:
            break
        await asyncio.sleep(0.01)
    assert json.loads(messages[0]) == {"type": "command", "kind": "config"}
    assert json.loads(messages[1]) == {"type": "ack", "command_id": "c1"}  # echoed
    channel.send_text(json.dumps({"bye": True}))
    assert await asyncio.wait_for(closed, 5) == 4003  # the server's close code reaches the device
    assert not channel.open and got[-1] == {"bye": True}


async def test_a_refused_channel_and_a_local_close(
    pki: dict[str, Path], ws_server: tuple[int, list[object]]
) -> None:
    port, _ = ws_server
    loop = asyncio.get_running_loop()
    stream = await Stream.open(loop, "127.0.0.1", port, _device_ctx(pki), "127.0.0.1")
    refused = Channel(stream, f"wss://127.0.0.1:{port}/refused", print, print)
    with pytest.raises(ChannelRefused) as info:
        await refused.handshake()
    assert info.value.status == 403 and stream.closed
    # a local close sends a close frame and reports nothing back
    calls: list[int] = []
    stream = await Stream.open(loop, "127.0.0.1", port, _device_ctx(pki), "127.0.0.1")
    channel = Channel(stream, f"wss://127.0.0.1:{port}/", lambda _m: None, calls.append)
    await channel.handshake()
    channel.close()
    await asyncio.sleep(0.05)
    assert stream.closed and calls == []


async def test_frames_right_behind_the_upgrade_answer_reach_the_channel(
    pki: dict[str, Path],
) -> None:
    """A server may send its first frames in the same TLS record as its 101 answer: the
    message is delivered and the ping answered, by the frame parser that runs the open channel."""
    pong: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        key = next(
            v for k, _, v in (h.partition(": ") for h in head) if k.lower() == "sec-websocket-key"
        )
        text = json.dumps({"type": "command", "kind": "diagnostics"}).encode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
            + bytes([0x81, len(text)])
            + text
            + bytes([0x89, 4])
            + b"ping"
        )
        await writer.drain()
        first, second = await reader.readexactly(2)
        mask = await reader.readexactly(4)
        data = await reader.readexactly(second & 0x7F)
        pong.set_result(bytes([first]) + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=_server_ctx(pki))
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    stream = await Stream.open(loop, "127.0.0.1", port, _device_ctx(pki), "127.0.0.1")
    messages: list[str] = []
    channel = Channel(stream, f"wss://127.0.0.1:{port}/", messages.append, lambda _c: None)
    await channel.handshake()
    try:
        assert await asyncio.wait_for(pong, 5) == bytes([0x8A]) + b"ping"
        assert [json.loads(m) for m in messages] == [{"type": "command", "kind": "diagnostics"}]
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


async def test_timers_share_one_heap_and_fire_in_order() -> None:
    loop = asyncio.get_running_loop()
    heap = TimerHeap(loop)
    fired: list[str] = []
    now = loop.time()
    heap.call_at(now + 0.03, fired.append, "late")
    heap.call_at(now + 0.01, fired.append, "early")
    cancelled = heap.call_at(now + 0.02, fired.append, "cancelled")
    heap.call_at(now + 0.01, fired.append, "early-second")
    cancelled.cancel()
    assert len(heap) == 3
    await asyncio.sleep(0.08)
    assert fired == ["early", "early-second", "late"]
    assert len(heap) == 0
    # a failing callback does not stop the others
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))

    def boom(_arg: str) -> None:
        raise RuntimeError("boom")

    heap.call_at(loop.time(), boom, "x")
    heap.call_at(loop.time(), fired.append, "after")
    await asyncio.sleep(0.02)
    assert fired[-1] == "after" and isinstance(errors[0], RuntimeError)
