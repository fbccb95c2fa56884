"""The command channel (MT-12): each device keeps one outbound WSS connection (mutual TLS) to its
region, and server commands travel down it. The hub maps connected devices to their sockets and
sends queued commands at once when the device is online, or when it next connects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import WebSocket

from protocol.dm_channel import CloseCode

log = logging.getLogger("roomtrust.dm.commands")


class CommandHub:
    def __init__(self) -> None:
        self._sockets: dict[str, WebSocket] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def connected(self, device_id: str) -> bool:
        return device_id in self._sockets

    def device_ids(self) -> list[str]:
        """The devices whose channel this process holds now."""
        return list(self._sockets)

    @property
    def count(self) -> int:
        return len(self._sockets)

    async def attach(self, device_id: str, socket: WebSocket) -> None:
        old = self._sockets.get(device_id)
        self._sockets[device_id] = socket
        self._locks.setdefault(device_id, asyncio.Lock())
        if old is not None and old is not socket:
            with contextlib.suppress(Exception):
                await old.close(code=CloseCode.REPLACED, reason="replaced by a newer connection")

    def detach(self, device_id: str, socket: WebSocket) -> None:
        if self._sockets.get(device_id) is socket:
            del self._sockets[device_id]

    async def send(self, device_id: str, messages: list[dict[str, Any]]) -> bool:
        """Send to a connected device; False when it is not connected (the rows stay pending)."""
        socket = self._sockets.get(device_id)
        if socket is None or not messages:
            return False
        async with self._locks[device_id]:
            try:
                for message in messages:
                    await socket.send_json(message)
            except Exception:
                log.info("device %s went away while sending", device_id)
                self.detach(device_id, socket)
                return False
        return True

    async def close_device(self, device_id: str, reason: str) -> None:
        socket = self._sockets.pop(device_id, None)
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close(code=CloseCode.REVOKED, reason=reason)
