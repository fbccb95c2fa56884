"""Run an ASGI app on 127.0.0.1 with TLS and the ASGI TLS extension, on a dynamic port.

`serve()` binds the socket itself (port 0 by default) and writes the chosen port to a ready file,
so the parent process knows where the service listens without racing for a port.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import uvicorn

from services.common.asgi_tls import TlsHttpProtocol, TlsWebSocketProtocol


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Any, ctx: ssl.SSLContext, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        http=TlsHttpProtocol,
        ws=TlsWebSocketProtocol,
        ssl_context_factory=lambda _config, _default: ctx,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        backlog=2048,
        timeout_keep_alive=30,
        # idle keep-alive and WebSocket connections would otherwise hold a shutdown for ~10 s
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def write_ready_file(path: Path, port: int, extra: dict[str, Any] | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, **(extra or {})}))
    tmp.replace(path)


async def start_serving(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
    """Start `server` on `sock`; returns its task once it accepts connections, and raises what
    stopped it if it ended before that."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return task


async def serve(
    app: Any,
    ctx: ssl.SSLContext,
    sock: socket.socket,
    ready_file: Path | None = None,
    log_level: str = "warning",
) -> None:
    server = make_server(app, ctx, log_level)
    task = await start_serving(server, sock)
    if ready_file is not None:
        write_ready_file(ready_file, sock.getsockname()[1])
    await task
