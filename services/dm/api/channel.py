"""The device command channel (MT-12): `WSS /v1/device/commands`, one outbound connection per device.

The device opens it with its client certificate (mutual TLS). The server sends `command` messages
down it (see `delivery.py`); the device answers with `ack` (a command's result) and, for firmware,
`progress` (a stage). The messages and close codes are `protocol.dm_channel`'s. Revocation is
checked on every message: a refused certificate closes the channel with `CloseCode.REVOKED`, any
other refusal is sent back as an `error` message and the channel stays open.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.orm import Session

from protocol.dm_channel import PATH, ChannelError, ChannelMessageType, CloseCode, CommandKind
from services.common.errors import DomainError, Invalid
from services.dm.api.delivery import in_engine, push_pending
from services.dm.api.deps import DeviceAuth, State
from services.dm.domain import commands, lifecycle, reporting
from services.dm.domain.rollouts import RolloutEngine
from services.dm.store import touches
from services.dm.store.models import Device

router = APIRouter(tags=["device channel"])

CLOSE_REASON_CHARS = 120  # a WebSocket close frame holds at most 123 bytes of reason


@router.websocket(PATH)
async def command_channel(socket: WebSocket, device: DeviceAuth, state: State) -> None:
    def device_id(_s: Session, d: Device) -> str:
        return d.id

    try:
        own_id = await device.read(device_id)
    except DomainError as exc:
        await socket.close(code=CloseCode.REVOKED, reason=exc.reason[:CLOSE_REASON_CHARS])
        return
    await socket.accept()
    await state.hub.attach(own_id, socket)
    try:
        await push_pending(state, own_id)
        while True:
            message = await socket.receive_json()
            job = partial(
                handle_device_message,
                engine=state.engine,
                cert=device.certificate,
                message=message,
                now=state.now(),
            )
            try:
                await in_engine(state, job)
            except DomainError as exc:
                await socket.send_json(ChannelError(exc.code, exc.field, exc.reason).encode())
                if exc.status in (401, 403):
                    await socket.close(
                        code=CloseCode.REVOKED, reason=exc.reason[:CLOSE_REASON_CHARS]
                    )
                    return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.hub.detach(own_id, socket)


def handle_device_message(
    s: Session, *, engine: RolloutEngine, cert: str | None, message: Any, now: dt.datetime
) -> None:
    """One message from a device, inside the rollout engine: `ack` or `progress` of one of its own
    commands."""
    device = reporting.authenticate_device(s, cert, now)  # revocation checked on every message
    kind = message.get("type") if isinstance(message, dict) else None
    if kind not in (ChannelMessageType.ACK, ChannelMessageType.PROGRESS):
        raise Invalid("expected {type: ack|progress, command_id, ...}", field="type")
    command = commands.own_command(s, device, message.get("command_id"))
    if kind == ChannelMessageType.PROGRESS:
        if command.kind != CommandKind.FIRMWARE:
            raise Invalid("progress is reported on firmware commands only", field="type")
        engine.device_progress(s, device, command, message.get("stage"), now)
    else:
        first = command.acked_at is None
        result = message.get("result")
        if command.kind == CommandKind.FIRMWARE and first and isinstance(result, dict):
            engine.device_result(s, device, command, result, now)
        commands.acknowledge(s, device, command.id, result, now)
        if first:
            lifecycle.acknowledged(s, device, command, result, now)
    touches.touch(s, device, {"last_seen": now})
