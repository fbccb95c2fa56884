"""Server-to-device commands (config, diagnostics, firmware) and their acknowledgements.

Commands are rows first: the API's command hub sends them over the device's own WSS connection when
the device is connected, and again (all that are not acknowledged) whenever it reconnects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.dm_channel import Command, CommandKind
from services.common.errors import Invalid, NotFound
from services.dm.store.models import Device, DeviceCommand

KINDS = tuple(kind.value for kind in CommandKind)


def queue_command(
    session: Session, device: Device, kind: str, payload: Mapping[str, Any], now: dt.datetime
) -> DeviceCommand:
    if kind not in KINDS:
        raise ValueError(f"unknown command kind {kind}")
    kind = CommandKind(kind).value  # the plain string in the row
    command = DeviceCommand(device_id=device.id, kind=kind, payload=dict(payload), created_at=now)
    session.add(command)
    session.flush()
    return command


def pending(session: Session, device_id: str) -> list[DeviceCommand]:
    return list(
        session.scalars(
            select(DeviceCommand)
            .where(DeviceCommand.device_id == device_id, DeviceCommand.acked_at.is_(None))
            .order_by(DeviceCommand.id)
        )
    )


def pending_for(session: Session, device_ids: list[str]) -> dict[str, list[DeviceCommand]]:
    """The pending commands of several devices at once, each list in queue order."""
    found: dict[str, list[DeviceCommand]] = {device_id: [] for device_id in device_ids}
    if device_ids:
        for command in session.scalars(
            select(DeviceCommand)
            .where(DeviceCommand.device_id.in_(device_ids), DeviceCommand.acked_at.is_(None))
            .order_by(DeviceCommand.id)
        ):
            found[command.device_id].append(command)
    return found


def own_command(session: Session, device: Device, command_id: Any) -> DeviceCommand:
    """A command of this device, by the id the device quotes."""
    if isinstance(command_id, bool) or not isinstance(command_id, int):
        raise Invalid("command_id must be a number", field="command_id")
    command = session.get(DeviceCommand, command_id)
    if command is None or command.device_id != device.id:
        raise NotFound("no such command for this device", field="command_id")
    return command


def mark_delivered(session: Session, command_ids: list[int], now: dt.datetime) -> None:
    for command in session.scalars(select(DeviceCommand).where(DeviceCommand.id.in_(command_ids))):
        command.delivered_at = command.delivered_at or now


def acknowledge(
    session: Session, device: Device, command_id: Any, result: Any, now: dt.datetime
) -> DeviceCommand:
    command = own_command(session, device, command_id)
    if not isinstance(result, dict):
        raise Invalid("result must be an object", field="result")
    command.acked_at = now
    command.result = result
    if command.kind == CommandKind.CONFIG and result.get("applied") is True:
        device.configuration_version = str(command.payload["version"])
    return command


def as_message(command: DeviceCommand) -> dict[str, Any]:
    return Command(command.id, CommandKind(command.kind), command.payload).encode()
