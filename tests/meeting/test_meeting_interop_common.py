"""What the interop gateway's SIP and H.323 cores share (MT-07): the meaning of the meeting's
refusals, and the protocol names a third-party leg carries to the meeting's signaling."""

from __future__ import annotations

import json

import pytest

from protocol.errors import ErrorCode
from services.meeting.interop.common import CallProtocol, Refusal, refusal_of

REFUSALS = {
    ErrorCode.FORBIDDEN: Refusal.FORBIDDEN,  # a wrong password
    ErrorCode.NOT_FOUND: Refusal.NOT_FOUND,
    ErrorCode.CONFLICT: Refusal.NOT_FOUND,
    ErrorCode.INVALID: Refusal.NOT_FOUND,
    ErrorCode.REJECTED: Refusal.REJECTED,
    ErrorCode.UNAVAILABLE: Refusal.UNAVAILABLE,
    ErrorCode.UNAUTHENTICATED: Refusal.UNAVAILABLE,
    ErrorCode.FIRMWARE_REJECTED: Refusal.UNAVAILABLE,
}


def test_every_error_code_has_a_meaning_for_a_call() -> None:
    assert set(REFUSALS) == set(ErrorCode)


@pytest.mark.parametrize(("code", "refusal"), REFUSALS.items())
def test_the_signaling_error_code_maps_to_a_refusal(code: ErrorCode, refusal: Refusal) -> None:
    assert refusal_of(code) is refusal


@pytest.mark.parametrize("wire", ["Forbidden", "NotFound", "Conflict", "Invalid"])
def test_the_codes_the_meeting_refuses_with_are_read_from_their_wire_strings(wire: str) -> None:
    assert refusal_of(ErrorCode(wire)) is not Refusal.UNAVAILABLE


def test_the_protocols_are_named_as_the_meetings_signaling_and_call_records_name_them() -> None:
    assert [p.value for p in CallProtocol] == ["sips", "h323"]
    assert json.dumps({"protocol": CallProtocol.SIP}) == '{"protocol": "sips"}'
