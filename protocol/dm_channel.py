"""The DM device command channel (MT-12): one outbound WSS connection per device, mutual TLS.

The service sends `command` messages down it; the device answers each with an `ack` (and, for a
firmware command, a `progress` message once the image is downloaded). A refused message gets an
`error` back. The service closes the channel with `CloseCode.REVOKED` when the device's certificate
is no longer accepted, and with `CloseCode.REPLACED` when a newer connection of the same device
takes its place.

    {"type": "command", "command_id": 7, "kind": "firmware", "payload": {...}}
    {"type": "ack", "command_id": 7, "result": {...}}
    {"type": "progress", "command_id": 7, "stage": "downloaded"}
    {"type": "error", "error": "Invalid", "field": "type", "reason": "..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from protocol.errors import ErrorCode

PATH = "/v1/device/commands"


class ChannelMessageType(StrEnum):
    COMMAND = "command"
    ACK = "ack"
    PROGRESS = "progress"
    ERROR = "error"


class CommandKind(StrEnum):
    CONFIG = "config"
    DIAGNOSTICS = "diagnostics"
    FIRMWARE = "firmware"
    # Remote actions (payload in brackets); each is acknowledged before it is carried out.
    REBOOT = "reboot"  # {}: power-cycle, keeping the applied configuration
    FACTORY_RESET = "factory_reset"  # {}: wipe identity, keys and settings; enroll only when
    # an administrator has deployed the device again
    LOG_LEVEL = "log_level"  # {"level": "debug"|"info"|"warning"|"error"}
    RENEW_CERTIFICATE = "renew_certificate"  # {}: renew the certificate now, whatever time is
    # left on it (a renewal wave: a key suspected, a CA moved), over RENEW_PATH as usual


# Remote actions an administrator may send, single or bulk (the rest have endpoints of their own).
REMOTE_ACTIONS = (
    CommandKind.REBOOT,
    CommandKind.FACTORY_RESET,
    CommandKind.LOG_LEVEL,
    CommandKind.RENEW_CERTIFICATE,
)

# Certificate renewal (over mutual TLS with the current certificate; the body holds a CSR made
# with a new key): `{"csr_pem": ...}` -> 201 `{"certificate_pem", "ca_pem", "not_after"}`.
RENEW_PATH = "/v1/device/certificate"


class ProgressStage(StrEnum):
    DOWNLOADED = "downloaded"


class CloseCode(IntEnum):
    REPLACED = 4000  # a newer connection of the same device took over
    REVOKED = 4003  # the device's certificate is no longer accepted: enroll again


class ChannelMessageError(ValueError):
    """A channel message that is not one of this module's, or lacks a field."""


@dataclass(frozen=True)
class Command:
    TYPE: ClassVar[ChannelMessageType] = ChannelMessageType.COMMAND
    command_id: int
    kind: CommandKind
    payload: Mapping[str, Any]

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.TYPE.value,
            "command_id": self.command_id,
            "kind": self.kind.value,
            "payload": dict(self.payload),
        }


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[ChannelMessageType] = ChannelMessageType.ACK
    command_id: int
    result: Mapping[str, Any]

    def encode(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "command_id": self.command_id, "result": dict(self.result)}


@dataclass(frozen=True)
class Progress:
    TYPE: ClassVar[ChannelMessageType] = ChannelMessageType.PROGRESS
    command_id: int
    stage: ProgressStage

    def encode(self) -> dict[str, Any]:
        return {"type": self.TYPE.value, "command_id": self.command_id, "stage": self.stage.value}


@dataclass(frozen=True)
class ChannelError:
    TYPE: ClassVar[ChannelMessageType] = ChannelMessageType.ERROR
    error: ErrorCode
    field: str | None
    reason: str

    def encode(self) -> dict[str, Any]:
        return {
            "type": self.TYPE.value,
            "error": self.error.value,
            "field": self.field,
            "reason": self.reason,
        }


ChannelMessage = Command | Ack | Progress | ChannelError


def _get(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise ChannelMessageError(f"{data.get('type')} message: {name} is missing")
    value = data[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ChannelMessageError(f"{data.get('type')} message: {name} has the wrong type")
    if not isinstance(value, kind):
        raise ChannelMessageError(f"{data.get('type')} message: {name} has the wrong type")
    return value


def _enum(data: Mapping[str, Any], name: str, enum: type[StrEnum]) -> Any:
    value = _get(data, name, str)
    try:
        return enum(value)
    except ValueError:
        raise ChannelMessageError(f"{data.get('type')} message: unknown {name} {value!r}") from None


def decode(data: object) -> ChannelMessage:
    """The typed message of a channel JSON object; `ChannelMessageError` names what is wrong."""
    if not isinstance(data, Mapping):
        raise ChannelMessageError("a channel message is a JSON object")
    kind = data.get("type")
    if kind == ChannelMessageType.COMMAND:
        return Command(
            _get(data, "command_id", int),
            _enum(data, "kind", CommandKind),
            _get(data, "payload", Mapping),
        )
    if kind == ChannelMessageType.ACK:
        return Ack(_get(data, "command_id", int), _get(data, "result", Mapping))
    if kind == ChannelMessageType.PROGRESS:
        return Progress(_get(data, "command_id", int), _enum(data, "stage", ProgressStage))
    if kind == ChannelMessageType.ERROR:
        return ChannelError(
            _enum(data, "error", ErrorCode),
            _get(data, "field", (str, type(None))),
            _get(data, "reason", str),
        )
    raise ChannelMessageError(f"unknown channel message type {kind!r}")
