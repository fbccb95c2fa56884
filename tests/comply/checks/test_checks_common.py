"""Negative controls of the `common` checks (roomtrust/comply/checks/common.py): HTTP answers,
refusals that name a field, stored password hashes, and a secret searched for in a store."""

from __future__ import annotations

import pytest

from roomtrust.comply.checks import common
from roomtrust.comply.negative import Case, Controls, all_cases
from services.common.passwords import hash_password

PASSWORD_HASHES = [hash_password("correct horse"), hash_password("correct horse")]
BODY_422 = {"error": "Invalid", "field": "meeting_transcript", "reason": "not a DM-09 category"}

CONTROLS: list[Controls] = [
    Controls(
        common.status_is,
        {"status": 403, "expected": 403, "what": "the un-deployed device's next heartbeat"},
        {"accepted": ({"status": 200}, "expected HTTP 403, got 200")},
        single="one HTTP answer: there is nothing to select",
    ),
    Controls(
        common.status_with_reason,
        {"status": 401, "body": {"reason": "no client certificate"}, "expected": 401},
        {
            "accepted": ({"status": 200, "body": {"stored": True}}, "expected HTTP 401"),
            "no-reason": ({"body": {"error": "Unauthorized"}}, "gives no reason"),
            "no-body": ({"body": None}, "gives no reason"),
        },
        single="one HTTP answer: there is nothing to select",
    ),
    Controls(
        common.answer_names_field,
        {"status": 422, "body": BODY_422, "expected": 422, "field": "meeting_transcript"},
        {
            "stored": ({"status": 200, "body": {"stored": True}}, "got 200"),
            "other-field": ({"field": "chat_message"}, "names the field 'meeting_transcript'"),
            "no-reason": ({"body": {**BODY_422, "reason": ""}}, "gives no reason"),
        },
        single="one HTTP answer: there is nothing to select",
    ),
    Controls(
        common.password_hashes,
        {"hashes": PASSWORD_HASHES, "minimum": 2},
        {
            "plaintext": ({"hashes": [PASSWORD_HASHES[0], "correct horse"]}, "not Argon2id"),
            "md5": (
                {"hashes": [PASSWORD_HASHES[0], "5f4dcc3b5aa765d61d8327deb882cf99"]},
                "not Argon2id",
            ),
            "too-few": ({"hashes": PASSWORD_HASHES[:1]}, "fewer than the 2"),
            "empty": ({"hashes": [], "minimum": 1}, "selected no stored password hashes"),
        },
    ),
    Controls(
        common.hashes_differ,
        {"hashes": PASSWORD_HASHES},
        {
            "unsalted": ({"hashes": [PASSWORD_HASHES[0]] * 2}, "not salted"),
            "empty": ({"hashes": []}, "selected no password hashes"),
        },
    ),
    Controls(
        common.secret_nowhere,
        {"secret": "hunter2", "places": [("table administrators", "ada $argon2id$"), ("f", b"x")]},
        {
            "in-a-row": ({"places": [("table notes", "pw hunter2")]}, "['table notes']"),
            "in-a-file": ({"places": [("store.sqlite3", b"..hunter2..")]}, "store.sqlite3"),
            "nothing-searched": ({"places": []}, "selected no stored rows or files"),
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
