"""protocol.dm_channel: the device command channel's messages round-trip exactly, bad ones are
refused by name, and the close codes are the ones devices act on."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import dm_channel as ch
from protocol.errors import ErrorCode

SAMPLES: list[tuple[ch.ChannelMessage, dict[str, Any]]] = [
    (
        ch.Command(7, ch.CommandKind.FIRMWARE, {"op": "install", "download": "/v1/x", "key": "k"}),
        {
            "type": "command",
            "command_id": 7,
            "kind": "firmware",
            "payload": {"op": "install", "download": "/v1/x", "key": "k"},
        },
    ),
    (
        ch.Command(8, ch.CommandKind.CONFIG, {"version": "3"}),
        {"type": "command", "command_id": 8, "kind": "config", "payload": {"version": "3"}},
    ),
    (
        ch.Ack(7, {"ok": False, "reason": "bad-signature"}),
        {"type": "ack", "command_id": 7, "result": {"ok": False, "reason": "bad-signature"}},
    ),
    (
        ch.Progress(7, ch.ProgressStage.DOWNLOADED),
        {"type": "progress", "command_id": 7, "stage": "downloaded"},
    ),
    (
        ch.ChannelError(ErrorCode.INVALID, "type", "expected ack"),
        {"type": "error", "error": "Invalid", "field": "type", "reason": "expected ack"},
    ),
]


@pytest.mark.parametrize(("message", "wire"), SAMPLES, ids=lambda v: type(v).__name__)
def test_every_channel_message_round_trips(
    message: ch.ChannelMessage, wire: dict[str, Any]
) -> None:
    assert message.encode() == wire
    assert ch.decode(wire) == message


def test_the_samples_cover_every_type() -> None:
    assert {m.TYPE for m, _ in SAMPLES} == set(ch.ChannelMessageType)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"type": "nack", "command_id": 1}, "unknown channel message type 'nack'"),
        ("ack", "a channel message is a JSON object"),
        ({"type": "ack", "result": {}}, "ack message: command_id is missing"),
        ({"type": "ack", "command_id": "1", "result": {}}, "command_id has the wrong type"),
        ({"type": "ack", "command_id": True, "result": {}}, "command_id has the wrong type"),
        ({"type": "ack", "command_id": 1, "result": []}, "result has the wrong type"),
        ({"type": "progress", "command_id": 1, "stage": "installed"}, "unknown stage"),
        ({"type": "command", "command_id": 1, "kind": "shutdown", "payload": {}}, "unknown kind"),
        ({"type": "error", "error": "Oops", "field": None, "reason": ""}, "unknown error"),
    ],
)
def test_bad_channel_messages_are_refused(data: Any, complaint: str) -> None:
    with pytest.raises(ch.ChannelMessageError, match=complaint):
        ch.decode(data)


def test_close_codes() -> None:
    assert {c.name: c.value for c in ch.CloseCode} == {"REPLACED": 4000, "REVOKED": 4003}
    assert ch.PATH == "/v1/device/commands"
