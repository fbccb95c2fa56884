"""The claims catalogue: every claim ID with its text, read from `features/claims.md`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CATALOGUE = Path(__file__).resolve().parent.parent / "features" / "claims.md"
_ROW = re.compile(r"^\|\s*((?:DM|MT|IN)-\d{2})\s*\|\s*(.+?)\s*\|\s*([^|]+?)\s*\|\s*$")


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    checked_at: tuple[str, ...]


def load_claims(path: Path = CATALOGUE) -> list[Claim]:
    claims = []
    for line in path.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            where = tuple(part.strip() for part in match.group(3).split(","))
            claims.append(Claim(match.group(1), match.group(2), where))
    if not claims:
        raise ValueError(f"{path}: no claims found")
    return claims


def claim_ids(path: Path = CATALOGUE) -> list[str]:
    return [claim.id for claim in load_claims(path)]
