"""Negative controls of the `meeting` checks (roomtrust/comply/checks/meeting.py), and whole
scenarios of features/meeting.feature against a meeting region without a lobby and with an
encryption switch (`WeakMeetingRegion`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.regions import MEETING_REGIONS
from roomtrust.comply.checks import meeting
from roomtrust.comply.fixture_regions import WeakMeetingRegion
from roomtrust.comply.negative import Case, Controls, FeatureRun, all_cases

pytest_plugins = ["pytester"]

CDR = {
    "cdr_id": "c1",
    "conference_id": "sa-1",
    "region": "sa",
    "started_at": "t0",
    "ended_at": "t1",
    "legs": [
        {"account_id": a, "joined_at": "t0", "left_at": "t1", "encrypted": True, "transport": "wss"}
        for a in ("a1", "a2")
    ],
}


def cdr(**changes: Any) -> dict[str, Any]:
    return {**CDR, **changes}


def cdr_leg(**changes: Any) -> dict[str, Any]:
    return cdr(legs=[{**CDR["legs"][0], **changes}, CDR["legs"][1]])


NOTICE = {"kind": "recording.started", "by": "Rosa", "text": "Rosa is recording this call"}
OPLOG = ["settings.update", "role.assign", "account.revoke"]
PERSONAL_AND_KEYS = sorted(meeting.PERSONAL_FIELDS | meeting.KEYS_AND_STATE)
EMPTY_TRACE: dict[str, list[str]] = {"database": [], "logs": [], "storage": []}

CONTROLS: list[Controls] = [
    Controls(
        meeting.conference_hosted_in,
        {"conference": {"region": "sa", "conference_id": "sa-1"}, "region": "sa"},
        {
            "elsewhere": (
                {"conference": {"region": "na", "conference_id": "na-1"}},
                "hosted in 'na'",
            ),
            "id-of-another-region": (
                {"conference": {"region": "sa", "conference_id": "na-1"}},
                "not of region sa",
            ),
        },
        single="one conference: there is nothing to select",
    ),
    Controls(
        meeting.redirected_to_home_region,
        {"status": 409, "body": {"reason": "the conference lives in region sa"}, "region": "sa"},
        {
            "served-elsewhere": ({"status": 200}, "answered 200"),
            "home-unnamed": ({"body": {"reason": "conflict"}}, "does not name region 'sa'"),
        },
        single="one HTTP answer: there is nothing to select",
    ),
    Controls(
        meeting.stored_only_in_home_region,
        {"counts": {"na": 0, "sa": 1, "eu": 0, "asia": 0}, "region": "sa"},
        {
            "replicated": ({"counts": {"na": 0, "sa": 1, "eu": 1, "asia": 0}}, "'eu': 1"),
            "empty": ({"counts": {}}, "selected no region stores"),
        },
    ),
    Controls(
        meeting.placed_nearest,
        {
            "answer": {"region": "eu", "candidates": {"na": 90, "sa": 200, "eu": 10, "asia": 190}},
            "region": "eu",
        },
        {
            "far-region": (
                {"answer": {"region": "na", "candidates": {"na": 90, "eu": 10}}},
                "placed in 'na'",
            ),
            "not-nearest": (
                {"answer": {"region": "eu", "candidates": {"na": 9, "eu": 10}}},
                "the best candidate has 9",
            ),
            "empty": ({"answer": {"region": "eu", "candidates": {}}}, "selected no candidate"),
        },
    ),
    Controls(
        meeting.no_encryption_switch,
        {"settings": {"chat_enabled": True}, "before": {"chat_enabled": True}},
        {
            "switch": (
                {"settings": {"chat_enabled": True, "encryption_enabled": False}},
                "encryption switches ['encryption_enabled']",
            ),
            "changed": ({"settings": {"chat_enabled": False}}, "the settings changed"),
            "empty": ({"settings": {}}, "selected no enterprise settings"),
        },
    ),
    Controls(
        meeting.plain_connections_refused,
        {"answers": {"plain HTTP": None, "plain WebSocket": None}},
        {
            "plain-http": (
                {"answers": {"plain HTTP": "HTTP 200", "plain WebSocket": None}},
                "were answered",
            ),
            "empty": ({"answers": {}}, "selected no plain-text connection attempts"),
        },
    ),
    Controls(
        meeting.waits_in_lobby,
        {"person": "Nick", "types": ["hello", "lobby.waiting"]},
        {
            "admitted": (
                {"types": ["hello", "admitted", "roster"]},
                "Nick got ['admitted', 'roster'] without a moderator's decision",
            ),
            "nothing": ({"types": []}, "never told to wait"),
        },
        single="an empty message list is the claim broken (`nothing`: never told to wait)",
    ),
    Controls(
        meeting.moderator_told_of,
        {"person": "Nick", "knock": {"participant": {"display_name": "Nick"}}},
        {
            "someone-else": ({"knock": {"participant": {"display_name": "Eve"}}}, "told of 'Eve'"),
            "no-knock": ({"knock": None}, "was not told that Nick waits"),
        },
        single="one knock, or None: there is nothing to select",
    ),
    Controls(
        meeting.in_roster,
        {
            "person": "Nick",
            "roster": {"participants": [{"display_name": "Mona"}, {"display_name": "Nick"}]},
        },
        {
            "left-out": (
                {"roster": {"participants": [{"display_name": "Mona"}]}},
                "not in the roster",
            ),
            "empty": ({"roster": {"participants": []}}, "selected no roster"),
        },
    ),
    Controls(
        meeting.rejected_without_secrets,
        {"person": "Eve", "close_code": 4403, "types": ["hello", "lobby.waiting", "rejected"]},
        {
            "got-keys": (
                {"types": ["hello", "lobby.waiting", "media.keys", "rejected"]},
                "received ['media.keys']",
            ),
            "still-connected": ({"close_code": None}, "closed with None"),
            "not-told": ({"types": ["hello", "lobby.waiting"]}, "not told of the rejection"),
        },
        single="one socket's close code and messages: a socket told nothing is the claim broken (`not-told`)",
    ),
    Controls(
        meeting.only_moderator_admitted,
        {
            "roster": {"participants": [{"display_name": "Mona"}], "lobby": [{}, {}, {}]},
            "moderator": "Mona",
            "waiting": 3,
            "crowd_types": [["lobby.waiting"]] * 3,
        },
        {
            "crowd-in-roster": (
                {
                    "roster": {
                        "participants": [{"display_name": "Mona"}, {"display_name": "Crowd"}],
                        "lobby": [{}, {}],
                    }
                },
                "the roster holds ['Mona', 'Crowd']",
            ),
            "lobby-short": (
                {"roster": {"participants": [{"display_name": "Mona"}], "lobby": [{}]}},
                "1 wait in the lobby",
            ),
            "crowd-admitted": (
                {"crowd_types": [["lobby.waiting"], ["admitted", "roster"], ["lobby.waiting"]]},
                "1 of the crowd were admitted",
            ),
            "empty": ({"crowd_types": []}, "selected no joining sockets"),
        },
    ),
    Controls(
        meeting.hidden_from_directory,
        {"listed_ids": {"sa-open"}, "hidden_ids": {"sa-once", "sa-hidden"}},
        {
            "listed": (
                {"listed_ids": {"sa-open", "sa-hidden"}},
                "the directory lists ['sa-hidden']",
            ),
            "empty": ({"hidden_ids": set()}, "selected no conferences that must stay hidden"),
        },
    ),
    Controls(
        meeting.join_refused_not_found,
        {"error": {"error": "NotFound", "field": "conference_id"}},
        {
            "no-error": ({"error": None}, "got no error"),
            "other-error": (
                {"error": {"error": "Forbidden", "field": None}},
                "('Forbidden', None)",
            ),
        },
        single="one error message, or None: there is nothing to select",
    ),
    Controls(
        meeting.refused_as_forbidden,
        {
            "errors": [
                {"error": "Forbidden", "reason": "chat is off: the administrator disabled it"}
            ],
            "because": "administrator",
        },
        {
            "other-error": (
                {"errors": [{"error": "Invalid", "reason": "administrator"}]},
                "not refused as Forbidden",
            ),
            "no-reason": (
                {"errors": [{"error": "Forbidden", "reason": "no"}]},
                "do not mention the administrator",
            ),
            "empty": ({"errors": []}, "selected no refusals"),
        },
    ),
    Controls(
        meeting.told_muted_by,
        {"notices": {"Nick": {"by": "Mona"}, "Ned": {"by": "Mona"}}, "by": "Mona"},
        {
            "wrong-moderator": (
                {"notices": {"Nick": {"by": "Mona"}, "Ned": {"by": None}}},
                "{'Ned': None}",
            ),
            "empty": ({"notices": {}}, "selected no muted participants"),
        },
    ),
    Controls(
        meeting.video_off,
        {"state": {"video": False}},
        {
            "still-on": ({"state": {"video": True}}, "video True"),
            "no-state": ({"state": {}}, "video None"),
        },
        single="one media state: there is nothing to select",
    ),
    Controls(
        meeting.closed_with,
        {
            "person": "Ned",
            "close_code": 4000,
            "expected": 4000,
            "types": ["removed"],
            "told": "removed",
        },
        {
            "still-open": ({"close_code": None}, "closed with None, not 4000"),
            "not-told": ({"types": ["roster"]}, "was not sent 'removed'"),
        },
        single="one socket's close code: there is nothing to select",
    ),
    Controls(
        meeting.revoked_refused,
        {
            "status": 401,
            "body": {"reason": "access revoked"},
            "login_status": 401,
            "login_body": {"reason": "access revoked"},
            "expected": 401,
        },
        {
            "still-served": ({"status": 200, "body": {"account_id": "a"}}, "got 200, not 401"),
            "no-reason": ({"body": {}}, "gives no reason"),
            "can-log-in": ({"login_status": 200, "login_body": {"token": "t"}}, "login got 200"),
            "wrong-reason": ({"login_body": {"reason": "bad password"}}, "says 'bad password'"),
        },
        single="two HTTP answers: there is nothing to select",
    ),
    Controls(
        meeting.room_system_limited,
        {
            "me": {
                "kind": "room_system",
                "permissions": ["call.place_receive", "media.self_disable"],
            },
            "accounts_status": 403,
        },
        {
            "user": ({"me": {"kind": "user", "permissions": []}}, "logs in as 'user'"),
            "extra-permission": (
                {
                    "me": {
                        "kind": "room_system",
                        "permissions": [
                            "call.place_receive",
                            "media.self_disable",
                            "member.manage",
                        ],
                    }
                },
                "member.manage",
            ),
            "lists-accounts": ({"accounts_status": 200}, "listed accounts (200)"),
        },
        single="one account and one HTTP status: there is nothing to select",
    ),
    Controls(
        meeting.holds_exactly,
        {"held": ["dashboard", "statistics"], "expected": ["dashboard", "statistics"]},
        {
            "extra": ({"held": ["dashboard", "statistics", "record"]}, "['record'] too much"),
            "missing": ({"held": ["dashboard"]}, "misses ['statistics']"),
            "empty": ({"expected": []}, "selected no expected permissions"),
        },
    ),
    Controls(
        meeting.cannot_assign_role,
        {"created_role": "user", "status": 403},
        {
            "assigned": ({"status": 200}, "role change got 200"),
            "created-manager": ({"created_role": "meeting_manager"}, "created a 'meeting_manager'"),
        },
        single="one created role and one HTTP status: there is nothing to select",
    ),
    Controls(
        meeting.gated_by_permission,
        {
            "statuses": {"customize POST /v1/segments": 201, "user POST /v1/segments": 403},
            "holders": {"customize POST /v1/segments": True, "user POST /v1/segments": False},
        },
        {
            "holder-refused": (
                {"statuses": {"customize POST /v1/segments": 403, "user POST /v1/segments": 403}},
                "holds the permission and got 403",
            ),
            "other-let-in": (
                {"statuses": {"customize POST /v1/segments": 201, "user POST /v1/segments": 201}},
                "lacks the permission and got 201",
            ),
            "other-erred": (
                {"statuses": {"customize POST /v1/segments": 201, "user POST /v1/segments": 500}},
                "got 500, not 403",
            ),
            "holders-only": (
                {"statuses": {"customize POST /v1/segments": 201}},
                "every probed role holds the permission",
            ),
            "nobody-holds": (
                {
                    "holders": {
                        "customize POST /v1/segments": False,
                        "user POST /v1/segments": False,
                    }
                },
                "no probed role holds the permission",
            ),
            "empty": ({"statuses": {}}, "selected no probed endpoints"),
        },
    ),
    Controls(
        meeting.retained_until_deadline,
        {"rows": {"accounts": 2, "call_records": 1, "conferences": 1}, "me_status": 200},
        {
            "deleted-early": (
                {"rows": {"accounts": 0, "call_records": 0}},
                "(0, 0), expected (2, 1)",
            ),
            "locked-out": ({"me_status": 401}, "got 401 before the deadline"),
        },
        single="the row counts of one enterprise: no rows is the claim broken (`deleted-early`)",
    ),
    Controls(
        meeting.deleted_after_deadline,
        {"rows": {"accounts": 0, "call_records": 0, "conferences": 0}, "me_status": 401},
        {
            "cdr-kept": (
                {"rows": {"accounts": 0, "call_records": 1, "conferences": 0}},
                "{'call_records': 1}",
            ),
            "still-served": ({"me_status": 200}, "got 200, not 401"),
            "empty": ({"rows": {}}, "selected no tables counted"),
        },
    ),
    Controls(
        meeting.log_retention,
        {"old_exists": False, "young_exists": True},
        {
            "kept-30-days-too-long": ({"old_exists": True}, "older than 180 days is still there"),
            "deleted-early": ({"young_exists": False}, "younger than 180 days was deleted"),
        },
        single="two flags: there is nothing to select",
    ),
    Controls(
        meeting.only_listed_account_fields,
        {"columns": PERSONAL_AND_KEYS},
        {
            "phone": ({"columns": [*PERSONAL_AND_KEYS, "phone"]}, "unlisted fields ['phone']"),
            "no-company": (
                {"columns": [c for c in PERSONAL_AND_KEYS if c != "company"]},
                "lacks ['company']",
            ),
            "empty": ({"columns": []}, "selected no columns"),
        },
    ),
    Controls(
        meeting.cdr_metadata_only,
        {
            "records": [CDR],
            "region": "sa",
            "accounts": {"a1", "a2"},
            "chat_text": "quarterly numbers",
        },
        {
            "media-link": (
                {"records": [cdr(recording_url="s3://x")]},
                "the call record has fields",
            ),
            "chat-kept": ({"records": [cdr_leg(transport="quarterly numbers")]}, "holds chat text"),
            "plain-leg": ({"records": [cdr_leg(encrypted=False)]}, "not encrypted"),
            "two-records": ({"records": [CDR, CDR]}, "2 call records"),
            "other-region": ({"records": [cdr(region="eu")]}, "of region eu"),
            "leg-missing": ({"accounts": {"a1", "a2", "a3"}}, "expected ['a1', 'a2', 'a3']"),
            "no-legs": ({"records": [cdr(legs=[])]}, "selected no call legs"),
        },
    ),
    Controls(
        meeting.told_who_records,
        {"notices": {p: [NOTICE] for p in ("Mona", "Rosa", "Luis")}, "recorder": "Rosa"},
        {
            "late-joiner-untold": (
                {"notices": {"Mona": [NOTICE], "Rosa": [NOTICE], "Luis": []}},
                "Luis got no recording notice",
            ),
            "anonymous": (
                {"notices": {"Mona": [{**NOTICE, "by": None, "text": "recording"}]}},
                "by None",
            ),
            "empty": ({"notices": {}}, "selected no participants"),
        },
    ),
    Controls(
        meeting.recording_only_in,
        {
            "new_files": {"sa": {"r1.rec"}, "eu": set()},
            "region": "sa",
            "recording_id": "r1",
            "raw": b"\x8f\x11\x02 ciphertext",
            "conference_id": "sa-1",
        },
        {
            "replicated": ({"new_files": {"sa": {"r1.rec"}, "eu": {"r1.rec"}}}, "outside sa"),
            "missing": ({"new_files": {"sa": set()}}, "new recording files in sa: []"),
            "plaintext": ({"raw": b"conference sa-1 audio"}, "not encrypted"),
            "empty-file": ({"raw": b""}, "empty"),
        },
        single="one recording: no new file is the claim broken (`missing`)",
    ),
    Controls(
        meeting.not_shared_outside,
        {"share_status": 403, "stranger_status": 404},
        {
            "shared": ({"share_status": 200}, "got 200, not 403"),
            "visible": ({"stranger_status": 200}, "other organisation got 200"),
        },
        single="two HTTP statuses: there is nothing to select",
    ),
    Controls(
        meeting.chat_echoed,
        {"sent": "enabled now", "received": {"text": "enabled now"}},
        {
            "not-delivered": ({"received": None}, "delivered None"),
            "altered": ({"received": {"text": "x"}}, "'x'"),
        },
        single="one chat message, or None: there is nothing to select",
    ),
    Controls(
        meeting.marker_nowhere,
        {"traces": dict.fromkeys(MEETING_REGIONS, EMPTY_TRACE), "logs_searched": 2},
        {
            "chat-logged": (
                {"traces": {"sa": {**EMPTY_TRACE, "logs": ["logs/meeting-sa.log"]}}},
                "the chat marker is stored",
            ),
            "chat-in-database": (
                {"traces": {"eu": {**EMPTY_TRACE, "database": ["messages"]}}},
                "messages",
            ),
            "no-logs": ({"logs_searched": 0}, "no server log to search"),
            "empty": ({"traces": {}}, "selected no meeting regions"),
        },
    ),
    Controls(
        meeting.oplog_holds,
        {"entries": [{"action": a, "actor": "ada", "at": "t"} for a in OPLOG], "actions": OPLOG},
        {
            "revoke-unlogged": (
                {"entries": [{"action": a, "actor": "ada", "at": "t"} for a in OPLOG[:2]]},
                "lacks ['account.revoke']",
            ),
            "anonymous": (
                {"entries": [{"action": a, "actor": "", "at": "t"} for a in OPLOG]},
                "without actor",
            ),
            "empty": ({"entries": []}, "selected no operation log entries"),
        },
    ),
    Controls(
        meeting.statistics_access,
        {"statuses": {"meeting_manager GET /v1/statistics/cdr": 200}, "expected": 200},
        {
            "refused": (
                {"statuses": {"meeting_manager GET /v1/statistics/cdr": 403}},
                "not answered 200",
            ),
            "empty": ({"statuses": {}}, "selected no statistics requests"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)


def test_meeting_scenarios_fail_against_a_meeting_region_without_lobby_and_with_a_switch(
    feature_run: FeatureRun, tmp_path: Path, no_postgres: None
) -> None:
    with WeakMeetingRegion(tmp_path / "weak-stack", "sa") as region:
        (feature_run.path / "stack.json").write_text(json.dumps(region.stack().to_json()))
        feature_run.bind(
            "meeting",
            """
            from pathlib import Path

            import pytest
            from pytest_bdd import scenarios

            from protocol.stack import read_stack

            from features.steps.meeting_steps import *  # noqa: F403


            @pytest.fixture(scope="session")
            def meeting_stack():
                return read_stack(Path(__file__).parent)


            scenarios("meeting.feature")
            """,
        )
        picked = "locked_conference_keeps or switch_encryption_off"
        outcome = feature_run.outcomes("-k", picked)
    assert outcome == {
        "test_a_locked_conference_keeps_newcomers_in_the_lobby_until_a_moderator_decides": (
            "call: roomtrust.comply.checks.CheckFailed: Nick got ['admitted', 'roster'] without "
            "a moderator's decision"
        ),
        "test_nobody_can_switch_encryption_off": (
            "call: roomtrust.comply.checks.CheckFailed: expected HTTP 422 naming the field "
            "'encryption_enabled', got 200: {'chat_enabled': True, 'recording_enabled': True, "
            "'encryption_enabled': False}"
        ),
    }
