"""What the interop gateway's SIP and H.323 cores share (MT-07): the meaning of the meeting's
refusals, and the protocol names a third-party leg carries to the meeting's signaling."""

from __future__ import annotations

import json

import pytest

from services.meeting.interop.common import CallProtocol, Refusal, refusal_of


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        ("Forbidden", Refusal.FORBIDDEN),
        ("NotFound", Refusal.NOT_FOUND),
        ("Conflict", Refusal.NOT_FOUND),
        ("Invalid", Refusal.NOT_FOUND),
        ("Unauthenticated", Refusal.UNAVAILABLE),
        ("forbidden", Refusal.UNAVAILABLE),  # codes are matched exactly
        ("", Refusal.UNAVAILABLE),
        (None, Refusal.UNAVAILABLE),
        (403, Refusal.UNAVAILABLE),
    ],
)
def test_the_signaling_error_code_maps_to_a_refusal(error: object, refusal: Refusal) -> None:
    assert refusal_of(error) is refusal


def test_the_protocols_are_named_as_the_meetings_signaling_and_call_records_name_them() -> None:
    assert [p.value for p in CallProtocol] == ["sips", "h323"]
    assert json.dumps({"protocol": CallProtocol.SIP}) == '{"protocol": "sips"}'
