"""Identifiers for meeting records."""

from __future__ import annotations

import re
import secrets
import uuid

_PLAIN = re.compile(r"^[0-9a-f]{32}$")
_CONFERENCE = re.compile(r"^[a-z]{2,8}-[0-9a-f]{16}$")


def new_id() -> str:
    return uuid.uuid4().hex


def conference_id(region: str) -> str:
    """Conference IDs name their hosting region, so any region can point a caller to the right one."""
    return f"{region}-{secrets.token_hex(8)}"


def region_of_conference(conference_id: str) -> str | None:
    region, sep, rest = conference_id.partition("-")
    return region if sep and rest else None


def is_plain_id(value: str) -> bool:
    return bool(_PLAIN.match(value))


def is_conference_id(value: str) -> bool:
    return bool(_CONFERENCE.match(value))
