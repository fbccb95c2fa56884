"""protocol.signaling_client against a small scripted signaling server: bearer and `auth` sign-in,
typed messages both ways, close codes, refusals, and TLS that trusts only the given CA."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from protocol import signaling as s
from protocol.errors import ErrorCode
from protocol.signaling_client import SignalingClient, SignalingRefused
from protocol.tls import server_context
from services.common.ca import RegionCA

Script = Callable[[ServerConnection, list[Any]], Awaitable[None]]


async def run(script: Script, client_side: Callable[[str], Awaitable[Any]], **kw: Any) -> Any:
    """Serve one connection with `script` (it gets the socket and a list to record in), run the
    client side against it, and return (client result, recorded)."""
    recorded: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        recorded.append(ws.request.headers.get("Authorization") if ws.request else None)
        await script(ws, recorded)

    async with serve(handler, "127.0.0.1", 0, **kw) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if kw.get("ssl") else "ws"
        result = await asyncio.wait_for(client_side(f"{scheme}://127.0.0.1:{port}{s.PATH}"), 10)
    return result, recorded


async def hello_then_echo_join(ws: ServerConnection, recorded: list[Any]) -> None:
    first = json.loads(await ws.recv())
    recorded.append(first)
    await ws.send(json.dumps(s.Hello("acct-a", "Alice").encode()))
    join = json.loads(await ws.recv())
    recorded.append(join)
    await ws.send("not json")
    await ws.send(json.dumps({"type": "surprise"}))
    await ws.send(json.dumps(s.Admitted(join["conference_id"], "p-1", True).encode()))
    await ws.send(json.dumps({**s.Removed("Bob").encode()}))
    await ws.close(int(s.SignalingClose.REMOVED), "removed")


def test_bearer_sign_in_join_and_typed_messages_until_the_close() -> None:
    async def client_side(url: str) -> tuple[s.Hello, list[s.Message], SignalingClient]:
        client = SignalingClient(url, token="tok")
        async with client:
            await client.send(s.Ping())
            hello = await client.hello()
            await client.join("na-abc", "pw")
            got = [m async for m in client]
        return hello, got, client

    (hello, got, client), recorded = asyncio.run(run(hello_then_echo_join, client_side))
    assert recorded[0] == "Bearer tok"
    assert recorded[1] == {"type": "ping"}
    assert recorded[2] == {"type": "join", "conference_id": "na-abc", "password": "pw"}
    assert hello == s.Hello("acct-a", "Alice")
    assert got == [s.Admitted("na-abc", "p-1", True), s.Removed("Bob")]
    assert client.skipped == 2  # the text that is not JSON and the unknown type
    assert client.close_code == s.SignalingClose.REMOVED


def test_a_gateway_signs_in_with_an_auth_message_and_no_header() -> None:
    async def script(ws: ServerConnection, recorded: list[Any]) -> None:
        recorded.append(json.loads(await ws.recv()))
        await ws.send(json.dumps(s.Hello("pstn:+1555", "Phone ...1555").encode()))
        await ws.wait_closed()

    async def client_side(url: str) -> s.Hello:
        client = SignalingClient(url)
        await client.connect(s.Auth(gateway_token="g", caller="+1555"))
        try:
            return await client.hello()
        finally:
            await client.close()

    hello, recorded = asyncio.run(run(script, client_side))
    assert recorded == [None, {"type": "auth", "gateway_token": "g", "caller": "+1555"}]
    assert hello.account_id == "pstn:+1555"


def test_a_refused_sign_in_raises_with_the_error_and_the_close_code() -> None:
    async def script(ws: ServerConnection, recorded: list[Any]) -> None:
        recorded.append(json.loads(await ws.recv()))
        error = s.Error(ErrorCode.UNAUTHENTICATED, None, "unknown gateway token")
        await ws.send(json.dumps(error.encode()))
        await ws.close(int(s.SignalingClose.UNAUTHENTICATED), "unknown gateway token")

    async def client_side(url: str) -> tuple[SignalingRefused, dict[str, Any] | None, int | None]:
        client = SignalingClient(url)
        await client.connect(s.Auth(gateway_token="forged", caller="+1555"))
        with pytest.raises(SignalingRefused) as refused:
            await client.hello()
        after = await client.receive()
        return refused.value, after, client.close_code

    (refused, after, code), _ = asyncio.run(run(script, client_side))
    assert refused.error is not None and refused.error.error is ErrorCode.UNAUTHENTICATED
    assert str(refused) == "unknown gateway token"
    assert after is None and code == s.SignalingClose.UNAUTHENTICATED


def test_a_close_before_hello_is_a_refusal_too() -> None:
    async def script(ws: ServerConnection, recorded: list[Any]) -> None:
        await ws.close(int(s.SignalingClose.FORBIDDEN), "no")

    async def client_side(url: str) -> SignalingRefused:
        client = SignalingClient(url)
        await client.connect()
        with pytest.raises(SignalingRefused) as refused:
            await client.hello()
        return refused.value

    refused, _ = asyncio.run(run(script, client_side))
    assert refused.close_code == s.SignalingClose.FORBIDDEN and refused.error is None


def test_send_raw_sends_any_object_as_it_is() -> None:
    async def script(ws: ServerConnection, recorded: list[Any]) -> None:
        recorded.append(json.loads(await ws.recv()))

    async def client_side(url: str) -> None:
        async with SignalingClient(url) as client:
            await client.send_raw({"type": "lock", "locked": "yes"})
            await asyncio.sleep(0.1)

    _, recorded = asyncio.run(run(script, client_side))
    assert recorded[1] == {"type": "lock", "locked": "yes"}


# -- TLS -----------------------------------------------------------------------------------------


def tls_server(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    ca = RegionCA.load_or_create(tmp_path / name / "ca", f"meeting-{name}")
    cert, key = ca.write_server_files(tmp_path / name, ["127.0.0.1", "localhost"])
    return server_context(cert, key), tmp_path / name / "ca" / "ca.pem"


async def say_hello(ws: ServerConnection, recorded: list[Any]) -> None:
    await ws.send(json.dumps(s.Hello("a", "A").encode()))
    await ws.wait_closed()


def test_wss_trusts_the_region_ca(tmp_path: Path) -> None:
    context, ca_file = tls_server(tmp_path, "na")

    async def client_side(url: str) -> s.Hello:
        async with SignalingClient(url, ca_file, token="t") as client:
            return await client.hello()

    hello, _ = asyncio.run(run(say_hello, client_side, ssl=context))
    assert hello == s.Hello("a", "A")


def test_wss_refuses_a_server_of_another_ca(tmp_path: Path) -> None:
    context, _ = tls_server(tmp_path, "na")
    _, other_ca = tls_server(tmp_path, "eu")

    async def client_side(url: str) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await SignalingClient(url, other_ca, token="t").connect()

    asyncio.run(run(say_hello, client_side, ssl=context))


def test_a_wss_url_needs_a_ca() -> None:
    with pytest.raises(ValueError, match="needs the CA file"):
        SignalingClient("wss://127.0.0.1:1/v1/signaling")


def test_a_message_sent_while_resuming_waits_for_resumed() -> None:
    """A message sent while the socket is being resumed goes out after `resume` on the new socket,
    never before it: the server would refuse it there (not in a conference yet), and the refusal
    would read as a refused resume."""

    async def script(ws: ServerConnection, recorded: list[Any]) -> None:
        if len(recorded) > 1:
            await asyncio.sleep(0.2)  # a slow sign-in: the new socket is open, `resume` not sent
        await ws.send(json.dumps(s.Hello("acct-a", "Alice").encode()))
        if len(recorded) == 1:  # the first socket: join, get a token, then drop
            recorded.append(json.loads(await ws.recv()))
            await ws.send(json.dumps(s.ResumeToken("na-abc", "p-1", "secret").encode()))
            await ws.close()
            return
        recorded.append(json.loads(await ws.recv()))
        await asyncio.sleep(0.3)  # a slow resume: the client's other task sends meanwhile
        await ws.send(json.dumps(s.Resumed("na-abc", "p-1", True).encode()))
        recorded.append(json.loads(await ws.recv()))

    async def client_side(url: str) -> tuple[dict[str, Any] | None, SignalingClient]:
        client = SignalingClient(url, token="tok", resumable=True)
        async with client:
            await client.hello()
            await client.join("na-abc")
            assert (await client.receive())["type"] == s.MessageType.RESUME_TOKEN  # type: ignore[index]

            async def send_while_resuming() -> None:
                while not client._resuming:  # the drop noticed, the new socket on its way
                    await asyncio.sleep(0.01)
                await client.send(s.Ping())

            sender = asyncio.create_task(send_while_resuming())
            answer = await client.receive()
            await sender
        return answer, client

    (answer, client), recorded = asyncio.run(run(script, client_side))
    assert answer is not None and answer["type"] == s.MessageType.RESUMED
    assert recorded[1]["type"] == s.MessageType.JOIN and recorded[1]["resumable"] is True
    # the second socket: its sign-in header, then `resume` first and the ping after it
    assert recorded[3]["type"] == s.MessageType.RESUME
    assert recorded[4] == {"type": "ping"}
    assert len(client.resumes) == 1
