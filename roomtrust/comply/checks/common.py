"""Checks several families share: an HTTP answer's status, a refusal that names the offending
field, stored password hashes, and a secret that must appear nowhere in a store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from roomtrust.comply.checks import check, require, selected
from services.common.passwords import is_password_hash


@check("common")
def status_is(status: int, expected: int, what: str) -> None:
    """An answer has exactly the expected HTTP status."""
    require(status == expected, f"{what}: expected HTTP {expected}, got {status}")


@check("common")
def status_with_reason(status: int, body: Mapping[str, Any] | None, expected: int) -> None:
    """A refusal has the expected status and says why."""
    require(status == expected, f"expected HTTP {expected} with a reason, got {status}: {body}")
    require(body and body.get("reason"), f"the HTTP {status} answer gives no reason: {body}")


@check("common")
def answer_names_field(
    status: int, body: Mapping[str, Any] | None, expected: int, field: str
) -> None:
    """A refusal has the expected status, names the offending field and gives a reason."""
    require(
        status == expected,
        f"expected HTTP {expected} naming the field {field!r}, got {status}: {body}",
    )
    named = body.get("field") if body else None
    require(named == field, f"the refusal names the field {named!r}, not {field!r}")
    require(body and body.get("reason"), f"the refusal of {field!r} gives no reason: {body}")


@check("common")
def password_hashes(hashes: Sequence[str | None], minimum: int = 1) -> None:
    """Every stored password is a salted Argon2id hash (and there are enough to check)."""
    selected(hashes, "stored password hashes")
    require(
        len(hashes) >= minimum,
        f"only {len(hashes)} stored password(s), fewer than the {minimum} this check needs",
    )
    plain = [h for h in hashes if not (isinstance(h, str) and is_password_hash(h))]
    require(not plain, f"{len(plain)} stored password(s) are not Argon2id hashes: {plain[:3]}")


@check("common")
def hashes_differ(hashes: Sequence[str]) -> None:
    """Equal passwords give different hashes (each hash has its own salt)."""
    selected(hashes, "password hashes")
    require(
        len(set(hashes)) == len(hashes),
        f"{len(hashes) - len(set(hashes))} hash(es) repeat: the hashes are not salted",
    )


@check("common")
def secret_nowhere(secret: str, places: Iterable[tuple[str, str | bytes]]) -> None:
    """A secret (a password, a chat marker) appears in none of the places searched.

    `places` pairs a location (`table administrators`, a file path) with its content; at least one
    place must be searched."""
    searched = 0
    found: list[str] = []
    for where, content in places:
        searched += 1
        hit = secret.encode() in content if isinstance(content, bytes) else secret in content
        if hit:
            found.append(where)
    if not searched:
        selected([], "stored rows or files to search")
    require(not found, f"the secret appears in {found[:5]} ({len(found)} place(s))")
