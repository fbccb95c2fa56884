"""The sans-IO meeting client: feed it server answers and intents, assert what it sends and shows."""

from __future__ import annotations

import pytest

from devices_virtual.agent.actions import HttpRequest, StartTimer
from devices_virtual.meeting_client import (
    ClientAction,
    CloseSocket,
    CreateConference,
    HttpAnswer,
    HttpFailed,
    JoinConference,
    LeaveConference,
    MeetingClient,
    Moderate,
    OpenSocket,
    PasswordLogin,
    RoomSystemRegistration,
    SendChat,
    SendSocket,
    SetMedia,
    Show,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    Start,
    State,
    Stop,
    StoreRoomCredential,
    TimerDue,
)

URL = "https://127.0.0.1:5443"


def sent(actions: list[ClientAction]) -> list[dict[str, object]]:
    return [a.message for a in actions if isinstance(a, SendSocket)]


def shown(actions: list[ClientAction]) -> list[str]:
    return [a.kind for a in actions if isinstance(a, Show)]


def logged_in(auto_admit: bool = False) -> MeetingClient:
    client = MeetingClient(
        URL, PasswordLogin("ana@example.com", "a long password"), auto_admit=auto_admit
    )
    (login,) = client.handle(Start(0.0))
    assert isinstance(login, HttpRequest)
    client.handle(HttpAnswer(0.1, login.request_id, 200, {"token": "T1", "account_id": "acc-1"}))
    client.handle(SocketOpened(0.2))
    client.handle(
        SocketMessage(0.3, {"type": "hello", "account_id": "acc-1", "display_name": "Ana"})
    )
    return client


def joined(moderator: bool = False, auto_admit: bool = False) -> MeetingClient:
    client = logged_in(auto_admit)
    client.handle(JoinConference(1.0, "eu-abc"))
    client.handle(
        SocketMessage(
            1.1,
            {
                "type": "admitted",
                "conference_id": "eu-abc",
                "participant_id": "p1",
                "moderator": moderator,
            },
        )
    )
    return client


def test_login_then_signaling_with_the_token() -> None:
    client = MeetingClient(URL, PasswordLogin("ana@example.com", "a long password"))
    (login,) = client.handle(Start(0.0))
    assert isinstance(login, HttpRequest)
    assert login.url == f"{URL}/v1/auth/login" and login.method == "POST"
    assert login.json == {"username": "ana@example.com", "password": "a long password"}
    assert not login.mtls
    (socket,) = client.handle(
        HttpAnswer(0.1, login.request_id, 200, {"token": "T1", "account_id": "a"})
    )
    assert socket == OpenSocket("wss://127.0.0.1:5443/v1/signaling", "T1")
    assert client.state is State.CONNECTING
    client.handle(SocketOpened(0.2))
    ready = client.handle(SocketMessage(0.3, {"type": "hello", "account_id": "a"}))
    assert ready == [StartTimer("ping", 25.3)] and client.state is State.READY


def test_a_refused_login_fails_with_the_reason() -> None:
    client = MeetingClient(URL, PasswordLogin("ana@example.com", "wrong"))
    (login,) = client.handle(Start(0.0))
    assert isinstance(login, HttpRequest)
    out = client.handle(HttpAnswer(0.1, login.request_id, 401, {"reason": "wrong password"}))
    assert client.state is State.FAILED and shown(out) == ["error"]
    assert client.last_error == {"reason": "wrong password"}


def test_room_system_registers_once_with_its_code_then_uses_its_certificate() -> None:
    client = MeetingClient(URL, RoomSystemRegistration("CODE-1", "CSR"))
    (register,) = client.handle(Start(0.0))
    assert isinstance(register, HttpRequest)
    assert register.url.endswith("/v1/room-systems/register") and not register.mtls
    assert register.json == {"registration_code": "CODE-1", "csr_pem": "CSR"}
    body = {"account_id": "room-1", "certificate_pem": "CERT", "ca_pem": "CA"}
    out = client.handle(HttpAnswer(0.1, register.request_id, 201, body))
    assert out == [
        StoreRoomCredential("room-1", "CERT", "CA"),
        OpenSocket("wss://127.0.0.1:5443/v1/signaling", None),
    ]
    client.handle(SocketMessage(0.3, {"type": "hello", "account_id": "room-1"}))
    (create,) = client.handle(CreateConference(1.0, "Standup"))
    assert isinstance(create, HttpRequest) and create.mtls and create.bearer is None


def test_create_then_join_as_owner_with_the_password() -> None:
    client = logged_in()
    (create,) = client.handle(CreateConference(1.0, "Board", password="s3cret-pass", locked=True))
    assert isinstance(create, HttpRequest) and create.bearer == "T1"
    assert create.json == {
        "title": "Board",
        "kind": "one_off",
        "locked": True,
        "escalation": False,
        "password": "s3cret-pass",
    }
    out = client.handle(HttpAnswer(1.1, create.request_id, 201, {"conference_id": "eu-1"}))
    assert sent(out) == [
        {
            "type": "join",
            "conference_id": "eu-1",
            "password": "s3cret-pass",
            "resumable": True,
        }
    ]
    assert client.state is State.JOINING


def test_intents_before_the_socket_is_ready_wait_for_hello() -> None:
    client = MeetingClient(URL, PasswordLogin("a@example.com", "a long password"))
    (login,) = client.handle(Start(0.0))
    assert client.handle(JoinConference(0.05, "na-1", "pw")) == []
    assert isinstance(login, HttpRequest)
    client.handle(HttpAnswer(0.1, login.request_id, 200, {"token": "T", "account_id": "a"}))
    out = client.handle(SocketMessage(0.3, {"type": "hello", "account_id": "a"}))
    assert sent(out) == [
        {"type": "join", "conference_id": "na-1", "password": "pw", "resumable": True}
    ]


def test_lobby_wait_then_admission_then_roster() -> None:
    client = logged_in()
    client.handle(JoinConference(1.0, "eu-abc"))
    out = client.handle(
        SocketMessage(
            1.1, {"type": "lobby.waiting", "conference_id": "eu-abc", "participant_id": "p9"}
        )
    )
    assert client.state is State.LOBBY and shown(out) == ["lobby"]
    with pytest.raises(ValueError, match="not in a conference"):
        client.handle(SendChat(1.2, "hello?"))
    client.handle(
        SocketMessage(
            2.0,
            {
                "type": "admitted",
                "conference_id": "eu-abc",
                "participant_id": "p9",
                "moderator": False,
            },
        )
    )
    assert client.state is State.IN_CONFERENCE
    roster = [
        {"participant_id": "p1", "display_name": "Owner"},
        {"participant_id": "p9", "display_name": "Ana"},
    ]
    client.handle(
        SocketMessage(
            2.1,
            {
                "type": "roster",
                "conference_id": "eu-abc",
                "participants": roster,
                "lobby": [],
                "locked": True,
            },
        )
    )
    assert [p["participant_id"] for p in client.roster] == ["p1", "p9"] and client.locked


def test_a_rejected_joiner_goes_back_to_ready_and_reconnects_after_the_close() -> None:
    client = logged_in()
    client.handle(JoinConference(1.0, "eu-abc"))
    client.handle(SocketMessage(1.1, {"type": "lobby.waiting", "participant_id": "p9"}))
    out = client.handle(
        SocketMessage(2.0, {"type": "rejected", "conference_id": "eu-abc", "reason": "no"})
    )
    assert client.outcome == "rejected" and shown(out) == ["rejected"]
    again = client.handle(SocketClosed(2.1, 4403))
    assert OpenSocket("wss://127.0.0.1:5443/v1/signaling", "T1") in again


def test_a_wrong_password_is_refused_and_the_client_can_try_again() -> None:
    client = logged_in()
    client.handle(JoinConference(1.0, "eu-abc", "bad"))
    client.handle(
        SocketMessage(
            1.1,
            {
                "type": "error",
                "error": "Forbidden",
                "field": "password",
                "reason": "wrong password",
            },
        )
    )
    assert client.state is State.READY and client.outcome == "refused"
    assert sent(client.handle(JoinConference(2.0, "eu-abc", "good"))) == [
        {"type": "join", "conference_id": "eu-abc", "password": "good", "resumable": True}
    ]


def test_moderator_auto_admits_knocks_when_asked_to() -> None:
    knock = {
        "type": "lobby.knock",
        "participant": {"participant_id": "p7", "account_id": "x", "display_name": "Guest"},
    }
    assert sent(joined(moderator=True, auto_admit=True).handle(SocketMessage(3.0, knock))) == [
        {"type": "admit", "participant_id": "p7"}
    ]
    assert sent(joined(moderator=True).handle(SocketMessage(3.0, knock))) == []
    assert sent(joined(moderator=False, auto_admit=True).handle(SocketMessage(3.0, knock))) == []


def test_obeys_mute_and_remove() -> None:
    client = joined()
    out = client.handle(SocketMessage(3.0, {"type": "muted", "by": "Owner", "audio": False}))
    assert client.audio is False and shown(out) == ["muted"]
    out = client.handle(SocketMessage(4.0, {"type": "removed", "by": "Owner"}))
    assert (
        client.outcome == "removed" and client.conference_id is None and client.state is State.READY
    )
    with pytest.raises(ValueError):
        client.handle(SendChat(4.1, "still here?"))


def test_moderation_messages() -> None:
    client = joined(moderator=True)
    msgs = [
        sent(client.handle(Moderate(5.0, "mute", "all"))),
        sent(client.handle(Moderate(5.1, "remove", "p3"))),
        sent(client.handle(Moderate(5.2, "lock"))),
        sent(client.handle(Moderate(5.3, "record_start"))),
        sent(client.handle(Moderate(5.4, "admit", "p4"))),
        sent(client.handle(Moderate(5.5, "end"))),
    ]
    assert msgs == [
        [{"type": "mute", "target": "all"}],
        [{"type": "remove", "target": "p3"}],
        [{"type": "lock", "locked": True}],
        [{"type": "record", "action": "start"}],
        [{"type": "admit", "participant_id": "p4"}],
        [{"type": "end"}],
    ]
    with pytest.raises(ValueError, match="needs a target"):
        client.handle(Moderate(6.0, "remove"))
    with pytest.raises(ValueError, match="unknown moderation"):
        client.handle(Moderate(6.0, "teleport", "p3"))


def test_chat_both_ways() -> None:
    client = joined()
    assert sent(client.handle(SendChat(3.0, "hi all"))) == [{"type": "chat", "text": "hi all"}]
    assert sent(client.handle(SendChat(3.1, "psst", to="p2"))) == [
        {"type": "chat", "text": "psst", "to": "p2"}
    ]
    with pytest.raises(ValueError, match=r"1\.\.2000"):
        client.handle(SendChat(3.2, ""))
    out = client.handle(
        SocketMessage(
            3.3,
            {"type": "chat", "from": "p2", "display_name": "Bo", "text": "hey", "private": False},
        )
    )
    assert [a.text for a in out if isinstance(a, Show)] == ["Bo: hey"] and len(client.chat) == 1


def test_recording_notice_is_shown_while_it_lasts() -> None:
    client = joined()
    text = "This call is being recorded by Owner"
    out = client.handle(
        SocketMessage(
            3.0, {"type": "notice", "kind": "recording.started", "by": "Owner", "text": text}
        )
    )
    assert client.recording and [a.text for a in out if isinstance(a, Show)] == [text]
    client.handle(
        SocketMessage(
            9.0, {"type": "notice", "kind": "recording.stopped", "by": "Owner", "text": "stopped"}
        )
    )
    assert not client.recording


def test_media_self_disable_and_media_keys_hook() -> None:
    client = joined()
    assert sent(client.handle(SetMedia(3.0, video=False))) == [{"type": "media", "video": False}]
    assert client.video is False
    assert client.handle(SocketMessage(3.1, {"type": "media.keys", "participant_id": "p1"})) == []


def test_leave_and_stop() -> None:
    client = joined()
    assert sent(client.handle(LeaveConference(5.0))) == [{"type": "leave"}]
    assert client.outcome == "left" and client.state is State.READY
    assert client.handle(LeaveConference(5.1)) == []
    out = client.handle(Stop(6.0))
    assert CloseSocket() in out
    logout = [a for a in out if isinstance(a, HttpRequest)]
    assert [r.url for r in logout] == [f"{URL}/v1/auth/logout"]
    assert client.state is State.STOPPED and client.handle(SocketClosed(6.1, 1000)) == []


def test_conference_end_and_revocation() -> None:
    client = joined()
    client.handle(SocketMessage(5.0, {"type": "conference.ended", "conference_id": "eu-abc"}))
    assert client.outcome == "ended"
    out = client.handle(SocketClosed(5.1, 4401))
    assert client.state is State.FAILED and shown(out) == ["error"]


def test_pings_keep_the_socket_alive() -> None:
    client = logged_in()
    assert client.handle(TimerDue(25.3, "ping")) == [
        SendSocket({"type": "ping"}),
        StartTimer("ping", 50.3),
    ]


def test_create_refused_keeps_the_client_ready() -> None:
    client = logged_in()
    (create,) = client.handle(CreateConference(1.0, "X"))
    assert isinstance(create, HttpRequest)
    out = client.handle(HttpFailed(1.5, create.request_id, "timeout"))
    assert client.state is State.READY and shown(out) == ["error"]


# -- resume ----------------------------------------------------------------------------------------

TOKEN = {"type": "resume.token", "conference_id": "eu-abc", "participant_id": "p1", "token": "tk"}


def dropped() -> tuple[MeetingClient, list[ClientAction]]:
    client = joined()
    client.handle(SocketMessage(1.2, TOKEN))
    return client, client.handle(SocketClosed(2.0, 1006))


def test_a_dropped_socket_reopens_and_resumes_the_place() -> None:
    client, out = dropped()
    assert OpenSocket("wss://127.0.0.1:5443/v1/signaling", "T1") in out
    assert client.state is State.RESUMING and client.conference_id == "eu-abc"
    client.handle(SocketOpened(2.1))
    out = client.handle(SocketMessage(2.2, {"type": "hello", "account_id": "acc-1"}))
    assert sent(out) == [
        {"type": "resume", "conference_id": "eu-abc", "participant_id": "p1", "token": "tk"}
    ]
    out = client.handle(
        SocketMessage(
            2.3,
            {
                "type": "resumed",
                "conference_id": "eu-abc",
                "participant_id": "p1",
                "admitted": True,
            },
        )
    )
    assert shown(out) == ["resumed"]
    assert client.state is State.IN_CONFERENCE and client.participant_id == "p1"


def test_a_failed_reopen_is_retried_on_a_timer_then_given_up() -> None:
    client, _ = dropped()
    out = client.handle(SocketClosed(2.1, 1006))  # the new socket did not open
    assert out == [StartTimer("resume", 2.1 + 0.2)] and client.state is State.RESUMING
    out = client.handle(TimerDue(2.3, "resume"))
    assert out == [OpenSocket("wss://127.0.0.1:5443/v1/signaling", "T1")]
    for attempt in range(60):
        out = client.handle(SocketClosed(3.0 + attempt, 1006))
        if client.state is not State.RESUMING:
            break
    assert client.conference_id is None and client.outcome == "disconnected"
    assert any(isinstance(a, OpenSocket) for a in out)  # a fresh socket, no conference


def test_a_refused_resume_loses_the_conference() -> None:
    client, _ = dropped()
    client.handle(SocketMessage(2.2, {"type": "hello", "account_id": "acc-1"}))
    error = {"type": "error", "error": "Forbidden", "field": "token", "reason": "no"}
    client.handle(SocketMessage(2.3, error))
    assert client.state is State.READY and client.conference_id is None
    assert client.outcome == "disconnected"


def test_without_a_token_a_drop_is_the_end_of_the_conference() -> None:
    client = joined()
    out = client.handle(SocketClosed(2.0, 1006))
    assert client.conference_id is None and client.outcome == "disconnected"
    assert client.state is State.CONNECTING and any(isinstance(a, OpenSocket) for a in out)
