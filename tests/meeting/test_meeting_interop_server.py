"""The interop gateway's driver (`server.py`, MT-07): its dispatch of the cores' actions is
exhaustive, so an action it does not handle fails mypy rather than being dropped at run time; and
what the meeting's signaling says reaches the cores as their conference answers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol import signaling
from protocol.errors import ErrorCode
from protocol.signaling import MessageType
from services.meeting.interop.common import (
    Action,
    Admitted,
    Ended,
    Event,
    Lobby,
    Refusal,
    Refused,
)
from services.meeting.interop.server import CallIO, Gateway

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "services" / "meeting" / "interop" / "server.py"
HANDLER = "            case Decision():\n"
CLOSED = "the meeting's signaling closed"


def mypy(source: str, directory: Path) -> subprocess.CompletedProcess[str]:
    copy = directory / "interop_server_copy.py"
    copy.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", str(copy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_removing_a_handler_from_the_dispatch_fails_mypy(tmp_path: Path) -> None:
    source = SERVER.read_text()
    assert source.count(HANDLER) == 1
    control = mypy(source, tmp_path)
    assert control.returncode == 0, control.stdout  # the copy as it is type-checks
    start = source.index(HANDLER)
    end = source.index("            case _:", start)
    broken = mypy(source[:start] + source[end:], tmp_path)
    assert broken.returncode == 1
    assert "assert_never" in broken.stdout and '"Decision"' in broken.stdout


# -- what the meeting's signaling says, as the cores hear it ---------------------------------------


class RecordingCore:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> list[Action]:
        self.events.append(event)
        return []


class ScriptedSignaling:
    """Stands in for the signaling client: the messages it yields, then a close."""

    def __init__(self, messages: list[signaling.Message], close_code: int | None = 1000) -> None:
        self.messages = messages
        self.close_code = close_code

    async def __aiter__(self) -> AsyncIterator[signaling.Message]:
        for message in self.messages:
            yield message


def heard(messages: list[signaling.Message], close_code: int | None = 1000) -> list[Event]:
    gateway = Gateway(Path("unused"), "sa", "127.0.0.1", 5061)
    core = RecordingCore()
    call = CallIO("sip-1", core)
    gateway.calls[call.call_id] = call
    asyncio.run(gateway._listen(call, ScriptedSignaling(messages, close_code)))  # type: ignore[arg-type]
    return core.events


WAITING = signaling.LobbyWaiting("sa-1", "p-1")
ADMITTED = signaling.Admitted("sa-1", "p-1", False)


@pytest.mark.parametrize(
    ("messages", "events"),
    [
        ([WAITING, ADMITTED], [Lobby("sip-1"), Admitted("sip-1"), Ended("sip-1", CLOSED)]),
        (
            [signaling.Error(ErrorCode.FORBIDDEN, None, "wrong password"), ADMITTED],
            [Refused("sip-1", Refusal.FORBIDDEN, "wrong password")],
        ),
        (
            [signaling.Error(ErrorCode.NOT_FOUND, None, "")],
            [Refused("sip-1", Refusal.NOT_FOUND, "NotFound")],
        ),
        (
            [WAITING, signaling.Rejected("sa-1", "declined")],
            [Lobby("sip-1"), Refused("sip-1", Refusal.REJECTED, MessageType.REJECTED)],
        ),
        (
            [ADMITTED, signaling.Removed("p-2")],
            [Admitted("sip-1"), Ended("sip-1", MessageType.REMOVED)],
        ),
        (
            [signaling.ConferenceEnded("sa-1"), ADMITTED],
            [Ended("sip-1", MessageType.CONFERENCE_ENDED)],
        ),
        (
            # once admitted, an error answers some request of the call's, not the call itself
            [ADMITTED, signaling.Error(ErrorCode.INVALID, None, "bad")],
            [Admitted("sip-1"), Ended("sip-1", CLOSED)],
        ),
    ],
)
def test_signaling_messages_become_the_cores_conference_answers(
    messages: list[signaling.Message], events: list[Event]
) -> None:
    assert heard(messages) == events


def test_a_signaling_socket_that_drops_ends_the_call_with_a_reason() -> None:
    assert heard([], close_code=None) == [Ended("sip-1", "signaling: closed without a close frame")]
    assert heard([], close_code=1011) == [Ended("sip-1", "signaling: closed with code 1011")]


def test_the_grants_wait_for_the_bridge() -> None:
    keys = signaling.MediaKeys("p-1", {"relay": "127.0.0.1:4000"})
    gateway = Gateway(Path("unused"), "sa", "127.0.0.1", 5061)
    call = CallIO("sip-1", RecordingCore())
    asyncio.run(gateway._listen(call, ScriptedSignaling([keys])))  # type: ignore[arg-type]
    assert call.grants == [keys.encode()]
