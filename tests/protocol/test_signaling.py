"""protocol.signaling: every message encodes to the JSON the services send and decodes back; a bad
object (unknown type, missing or mistyped field) is refused with a clear SignalingError."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from protocol import signaling as s
from protocol.errors import ErrorCode
from services.meeting.domain import moderation
from services.meeting.domain.chat import ChatRoom
from services.meeting.domain.lobby import Admit, Join, Lobby, Reject, Send

ALICE = s.Participant("p-a", "acct-a", "Alice", True, True, True, True)
BOB = s.Participant("p-b", "acct-b", "Bob", False, True, False, False)
GRANT = {  # the relay's grant, but for the participant_id (a field of the message)
    "conference_id": "na-abc",
    "profile": "AES_CM_128_HMAC_SHA1_80",
    "send_key": "c2VuZA==",
    "receive_key": "cmVjZWl2ZQ==",
    "media": {"host": "127.0.0.1", "port": 40000},
    "relay": "relay-1",
}

# One sample of every message, with the JSON object it is on the wire.
SAMPLES: list[tuple[s.Message, dict[str, Any]]] = [
    (s.Auth(token="t"), {"type": "auth", "token": "t"}),
    (
        s.Auth(gateway_token="g", caller="+15551234"),
        {"type": "auth", "gateway_token": "g", "caller": "+15551234"},
    ),
    (
        s.Auth(interop_token="i", protocol="sips", caller="sip:a@b", name="Room"),
        {
            "type": "auth",
            "interop_token": "i",
            "protocol": "sips",
            "caller": "sip:a@b",
            "name": "Room",
        },
    ),
    (s.Join("na-abc"), {"type": "join", "conference_id": "na-abc"}),
    (s.Join("na-abc", "pw"), {"type": "join", "conference_id": "na-abc", "password": "pw"}),
    (s.Leave(), {"type": "leave"}),
    (s.Ping(), {"type": "ping"}),
    (s.Admit("p-b"), {"type": "admit", "participant_id": "p-b"}),
    (s.Reject("p-b"), {"type": "reject", "participant_id": "p-b"}),
    (s.Lock(True), {"type": "lock", "locked": True}),
    (s.Mute(s.ALL), {"type": "mute", "target": "all"}),
    (s.Remove("p-b"), {"type": "remove", "target": "p-b"}),
    (s.Media(video=False), {"type": "media", "video": False}),
    (s.Media(True, False), {"type": "media", "audio": True, "video": False}),
    (s.ChatPost("hi"), {"type": "chat", "text": "hi"}),
    (s.ChatPost("hi", "p-b"), {"type": "chat", "text": "hi", "to": "p-b"}),
    (s.Record(s.RecordAction.START), {"type": "record", "action": "start"}),
    (s.Stream(s.RecordAction.STOP), {"type": "stream", "action": "stop"}),
    (s.End(), {"type": "end"}),
    (
        s.Join("na-abc", resumable=True),
        {"type": "join", "conference_id": "na-abc", "resumable": True},
    ),
    (
        s.Resume("na-abc", "p-a", "tok", "relay-1"),
        {
            "type": "resume",
            "conference_id": "na-abc",
            "participant_id": "p-a",
            "token": "tok",
            "relay": "relay-1",
        },
    ),
    (
        s.Resume("na-abc", "p-a", "tok"),
        {"type": "resume", "conference_id": "na-abc", "participant_id": "p-a", "token": "tok"},
    ),
    (
        s.Hello("acct-a", "Alice"),
        {"type": "hello", "account_id": "acct-a", "display_name": "Alice"},
    ),
    (s.Pong(), {"type": "pong"}),
    (
        s.Error(ErrorCode.FORBIDDEN, None, "no"),
        {"type": "error", "error": "Forbidden", "field": None, "reason": "no"},
    ),
    (
        s.Roster("na-abc", (ALICE,), (BOB,), True),
        {
            "type": "roster",
            "conference_id": "na-abc",
            "participants": [ALICE.encode()],
            "lobby": [BOB.encode()],
            "locked": True,
        },
    ),
    (s.LobbyKnock(BOB), {"type": "lobby.knock", "participant": BOB.encode()}),
    (
        s.LobbyWaiting("na-abc", "p-b"),
        {"type": "lobby.waiting", "conference_id": "na-abc", "participant_id": "p-b"},
    ),
    (
        s.Admitted("na-abc", "p-b", False),
        {
            "type": "admitted",
            "conference_id": "na-abc",
            "participant_id": "p-b",
            "moderator": False,
        },
    ),
    (
        s.Rejected("na-abc", "declined"),
        {"type": "rejected", "conference_id": "na-abc", "reason": "declined"},
    ),
    (s.Removed("Alice"), {"type": "removed", "by": "Alice"}),
    (s.Muted("Alice"), {"type": "muted", "by": "Alice", "audio": False}),
    (
        s.MediaState("p-a", False, True),
        {"type": "media.state", "participant_id": "p-a", "audio": False, "video": True},
    ),
    (
        s.ChatMessage("p-a", "Alice", "hi", "2025-01-01T00:00:00+00:00", False),
        {
            "type": "chat",
            "from": "p-a",
            "display_name": "Alice",
            "text": "hi",
            "at": "2025-01-01T00:00:00+00:00",
            "private": False,
        },
    ),
    (
        s.Notice(s.NoticeKind.RECORDING_STARTED, "Alice", "acct-a", "recorded", "t", "rec-1"),
        {
            "type": "notice",
            "kind": "recording.started",
            "by": "Alice",
            "by_account_id": "acct-a",
            "text": "recorded",
            "at": "t",
            "recording_id": "rec-1",
        },
    ),
    (
        s.Notice(s.NoticeKind.STREAMING_STOPPED, "Alice", "acct-a", "stopped", "t"),
        {
            "type": "notice",
            "kind": "streaming.stopped",
            "by": "Alice",
            "by_account_id": "acct-a",
            "text": "stopped",
            "at": "t",
        },
    ),
    (s.ConferenceEnded("na-abc"), {"type": "conference.ended", "conference_id": "na-abc"}),
    (s.MediaKeys("p-a", GRANT), {**GRANT, "type": "media.keys", "participant_id": "p-a"}),
    (
        s.MediaKeys("p-a", GRANT, rekey=True),
        {**GRANT, "type": "media.keys", "participant_id": "p-a", "rekey": True},
    ),
    (s.MediaMove("p-a", GRANT), {**GRANT, "type": "media.move", "participant_id": "p-a"}),
    (
        s.ResumeToken("na-abc", "p-a", "tok"),
        {
            "type": "resume.token",
            "conference_id": "na-abc",
            "participant_id": "p-a",
            "token": "tok",
        },
    ),
    (
        s.Resumed("na-abc", "p-a", True),
        {"type": "resumed", "conference_id": "na-abc", "participant_id": "p-a", "admitted": True},
    ),
]


@pytest.mark.parametrize(("message", "wire"), SAMPLES, ids=lambda v: type(v).__name__)
def test_every_message_encodes_to_its_wire_json_and_decodes_back(
    message: s.Message, wire: dict[str, Any]
) -> None:
    assert message.encode() == wire
    assert s.decode(wire, message.SENDER) == message
    assert s.decode(wire) == message  # without the sender too (chat: by its `from` key)


def test_the_samples_cover_every_message_class_and_every_type() -> None:
    classes = {type(m) for m, _ in SAMPLES}
    assert classes == {*s.CLIENT_MESSAGES.values(), *s.SERVER_MESSAGES.values()}
    assert {m.TYPE for m in classes} == set(s.MessageType)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"type": "admitted!", "conference_id": "c"}, "unknown message type 'admitted!'"),
        ({"conference_id": "c"}, "unknown message type None"),
        ({"type": 7}, "unknown message type 7"),
        (["join"], "a signaling message is a JSON object"),
        ({"type": "join"}, "join: conference_id is missing"),
        ({"type": "join", "conference_id": 5}, "join: conference_id must be a string"),
        ({"type": "join", "conference_id": "c", "password": 1}, "password must be a string"),
        ({"type": "lock", "locked": "yes"}, "lock: locked must be true or false"),
        ({"type": "lock", "locked": 1}, "lock: locked must be true or false"),
        ({"type": "record", "action": "pause"}, "record: action 'pause' is not one of start"),
        ({"type": "hello", "account_id": "a"}, "hello: display_name is missing"),
        (
            {"type": "error", "error": "Nope", "field": None, "reason": "r"},
            "error: error 'Nope' is not one of Invalid",
        ),
        ({"type": "error", "error": "Invalid", "reason": "r"}, "error: field is missing"),
        (
            {"type": "roster", "conference_id": "c", "participants": {}, "lobby": [], "locked": 0},
            "roster: participants must be a list",
        ),
        (
            {"type": "roster", "conference_id": "c", "participants": [{}], "lobby": []},
            "participant: participant_id is missing",
        ),
        ({"type": "lobby.knock", "participant": "Bob"}, "a participant is a JSON object"),
        (
            {
                "type": "notice",
                "kind": "party",
                "by": "",
                "by_account_id": "",
                "text": "",
                "at": "",
            },
            "notice: kind 'party' is not one of recording.started",
        ),
        ({"type": "media.keys", "relay": "r"}, "media.keys: participant_id is missing"),
        ({"type": "media.keys", "participant_id": "p", "rekey": "y"}, "rekey must be true"),
        ({"type": "chat", "from": "p", "text": "t"}, "chat: display_name is missing"),
    ],
)
def test_decode_refuses_unknown_types_and_bad_fields(data: Any, complaint: str) -> None:
    with pytest.raises(s.SignalingError, match=complaint.replace("(", r"\(").replace("?", r"\?")):
        s.decode(data)


def test_decode_refuses_a_message_from_the_wrong_side() -> None:
    with pytest.raises(s.SignalingError, match="a server does not send 'join'"):
        s.decode({"type": "join", "conference_id": "c"}, s.Sender.SERVER)
    with pytest.raises(s.SignalingError, match="a client does not send 'admitted'"):
        s.decode(s.Admitted("c", "p", True).encode(), s.Sender.CLIENT)


def test_chat_is_told_apart_by_its_sender() -> None:
    post = {"type": "chat", "text": "hi"}
    assert s.decode(post) == s.ChatPost("hi")
    with pytest.raises(s.SignalingError, match="chat: from is missing"):
        s.decode(post, s.Sender.SERVER)


def test_unknown_extra_keys_are_ignored() -> None:
    assert s.decode({"type": "ping", "trace": "x"}) == s.Ping()


# -- the services' own messages decode and encode back unchanged -------------------------------


def test_what_the_lobby_moderation_and_chat_send_is_the_protocol_exactly() -> None:
    lobby = Lobby("na-abc", locked=True)
    everything = frozenset({"chat", "conference.mute", "conference.participants"})
    everything |= {"media.self_disable"}
    actions = [
        *lobby.handle(Join("p-a", "acct-a", "Alice", True, everything)),
        *lobby.handle(Join("p-b", "acct-b", "Bob", False, everything)),
        *lobby.handle(Join("p-c", "acct-c", "Carol", False, everything, encrypted=False)),
        *lobby.handle(Admit("p-a", "p-b")),
        *lobby.handle(Reject("p-a", "p-c")),
        *moderation.mute(lobby, "p-a", "p-b"),
        *moderation.set_own_media(lobby, "p-a", None, False),
        *ChatRoom().post(
            lobby, "p-a", "hello", None, chat_enabled=True, now=dt.datetime(2025, 1, 1)
        ),
        *moderation.remove(lobby, "p-a", "p-b"),
    ]
    messages = [a.message.encode() for a in actions if isinstance(a, Send)]
    kinds = {m["type"] for m in messages}
    assert kinds >= {"roster", "lobby.knock", "lobby.waiting", "admitted", "rejected", "muted"}
    assert kinds >= {"media.state", "chat", "removed"}
    for message in messages:
        assert s.decode(message, s.Sender.SERVER).encode() == message


def test_signaling_close_codes_are_the_ones_on_the_wire() -> None:
    assert {c.name: c.value for c in s.SignalingClose} == {
        "ENDED": 1000,
        "REMOVED": 4000,
        "UNAUTHENTICATED": 4401,
        "FORBIDDEN": 4403,
    }
