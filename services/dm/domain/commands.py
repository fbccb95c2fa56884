"""Server-to-device commands (config, diagnostics, firmware) and their acknowledgements.

Commands are rows first: the API's command hub sends them over the device's own WSS connection when
the device is connected, and again (all that are not acknowledged) whenever it reconnects. Queuing
one signals the region's other replicas on commit (`store.signals`), since the device's channel may
be held by any of them; a replica claims the undelivered commands it sends (`claim_undelivered`),
so two that hear of the same command send it once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from protocol.dm_channel import Command, CommandKind
from services.common.errors import Invalid, NotFound
from services.dm.store import signals, touches
from services.dm.store.inserts import insert_new
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
    signals.send(session, signals.Signal.COMMANDS, device.id)
    return command


def queue_rollout_command(
    session: Session,
    device: Device,
    rollout_id: str,
    operation: str,
    payload: Mapping[str, Any],
    now: dt.datetime,
) -> DeviceCommand | None:
    """A rollout's firmware command, at most one per (rollout, device, operation): the unique
    index decides, so two replicas driving the same step queue it once. None when it exists."""
    command_id = insert_new(
        session,
        DeviceCommand,
        {
            "device_id": device.id,
            "kind": CommandKind.FIRMWARE.value,
            "payload": dict(payload),
            "created_at": now,
            "rollout_id": rollout_id,
            "operation": operation,
        },
    )
    if command_id is None:
        return None
    signals.send(session, signals.Signal.COMMANDS, device.id)
    return session.get(DeviceCommand, command_id)


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


def undelivered_devices(session: Session, device_ids: list[str]) -> list[str]:
    """Of these devices, those with commands never sent (a replica missed the signal)."""
    if not device_ids:
        return []
    return list(
        session.scalars(
            select(DeviceCommand.device_id)
            .where(
                DeviceCommand.delivered_at.is_(None),
                DeviceCommand.acked_at.is_(None),
                DeviceCommand.device_id.in_(device_ids),
            )
            .distinct()
        )
    )


def claim_undelivered(
    session: Session, device_ids: list[str], now: dt.datetime
) -> dict[str, list[DeviceCommand]]:
    """Mark the never-sent commands of these devices sent, and return them (each list in queue
    order) for the caller to send once committed. A command claimed but lost in sending is sent
    again when the device reconnects, with everything not acknowledged."""
    found: dict[str, list[DeviceCommand]] = {}
    if not device_ids:
        return found
    claimed = session.scalars(
        update(DeviceCommand)
        .where(
            DeviceCommand.device_id.in_(device_ids),
            DeviceCommand.delivered_at.is_(None),
            DeviceCommand.acked_at.is_(None),
        )
        .values(delivered_at=now)
        .returning(DeviceCommand)
        .execution_options(synchronize_session=False)
    )
    for command in sorted(claimed, key=lambda c: c.id):
        found.setdefault(command.device_id, []).append(command)
    return found


def acknowledge(
    session: Session, device: Device, command_id: Any, result: Any, now: dt.datetime
) -> DeviceCommand:
    command = own_command(session, device, command_id)
    if not isinstance(result, dict):
        raise Invalid("result must be an object", field="result")
    command.acked_at = now
    command.result = result
    if command.kind == CommandKind.CONFIG and result.get("applied") is True:
        version = str(command.payload["version"])
        touches.touch(session, device, {"configuration_version": version})
    return command


def as_message(command: DeviceCommand) -> dict[str, Any]:
    return Command(command.id, CommandKind(command.kind), command.payload).encode()
