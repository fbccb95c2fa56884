"""Whether a load was running while something else happened, told from Locust's own statistics.

Locust writes a row per statistics name to `stats_stats_history.csv` every second (`--csv` with
`--csv-full-history`): the time, the number of running users and the running totals of requests and
failures. A check made "under load" records when it started and ended; `running_throughout` then
finds the last row taken before the start and the first row taken after the end, and shows that
the load ran across the whole span: the expected number of users at every row between them, no
gap in the rows, and more requests at the end than at the start. `carried_on` shows that the
load's own requests kept succeeding over the same span (their count grew, their failures did not).

Rows are stamped with whole seconds (`int(time.time())` when written), so a row stamped `t` was
taken somewhere in `[t, t + 1)`: it is "before" a moment `s` only when `t + 1 <= s`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

AGGREGATED = "Aggregated"
MAX_GAP_S = 3.0  # Locust writes a row every second; more than this between two is a stall


class LoadNotShown(AssertionError):
    """The statistics do not show the load running (or succeeding) across the span."""


@dataclass(frozen=True)
class HistoryRow:
    timestamp: int
    users: int
    type: str
    name: str
    requests: int
    failures: int


@dataclass(frozen=True)
class Bracket:
    """The rows around a span: the last one before it and the first one after it (Aggregated)."""

    started: float
    ended: float
    before: HistoryRow
    after: HistoryRow
    rows: int  # Aggregated rows from `before` to `after`, both included

    @property
    def requests(self) -> int:
        return self.after.requests - self.before.requests

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_during": self.requests}


def parse_history(lines: Iterable[str]) -> list[HistoryRow]:
    """The rows of a `stats_stats_history.csv` (a partly written last line is left out)."""
    rows = []
    for record in csv.DictReader(lines):
        try:
            rows.append(
                HistoryRow(
                    timestamp=int(record["Timestamp"]),
                    users=int(record["User Count"]),
                    type=record["Type"] or "",
                    name=record["Name"],
                    requests=int(record["Total Request Count"]),
                    failures=int(record["Total Failure Count"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def read_history(path: Path) -> list[HistoryRow]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return parse_history(f)


def _series(rows: Sequence[HistoryRow], name: str, type_: str = "") -> list[HistoryRow]:
    return sorted(
        (r for r in rows if r.name == name and (r.type == type_ or name == AGGREGATED)),
        key=lambda r: r.timestamp,
    )


def running_throughout(
    rows: Sequence[HistoryRow], started: float, ended: float, users: int
) -> Bracket:
    """The rows around `[started, ended]` (epoch seconds), if the load ran with `users` users
    across all of it; raises `LoadNotShown` saying why not."""
    if ended < started:
        raise LoadNotShown(f"the span ends ({ended:.0f}) before it starts ({started:.0f})")
    total = _series(rows, AGGREGATED)
    if not total:
        raise LoadNotShown("the load's statistics hold no rows: no load was seen")
    before = [r for r in total if r.timestamp + 1 <= started]
    after = [r for r in total if r.timestamp >= ended]
    if not before:
        raise LoadNotShown(
            f"no statistics row precedes the checks (first row at {total[0].timestamp}, checks "
            f"from {started:.0f}): the load had not started"
        )
    if not after:
        raise LoadNotShown(
            f"no statistics row follows the checks (last row at {total[-1].timestamp}, checks "
            f"until {ended:.0f}): the load had stopped or stalled"
        )
    span = [r for r in total if before[-1].timestamp <= r.timestamp <= after[0].timestamp]
    short = [(r.timestamp, r.users) for r in span if r.users < users]
    if short:
        raise LoadNotShown(
            f"fewer than {users} users were running during the checks (time, users): {short[:5]}"
        )
    gaps = [
        (a.timestamp, b.timestamp)
        for a, b in itertools.pairwise(span)
        if b.timestamp - a.timestamp > MAX_GAP_S
    ]
    if gaps:
        raise LoadNotShown(f"the load's statistics stopped during the checks between {gaps[:3]}")
    bracket = Bracket(started, ended, before[-1], after[0], len(span))
    if bracket.requests <= 0:
        raise LoadNotShown(
            f"the load made no request during the checks ({bracket.before.requests} requests "
            f"before, {bracket.after.requests} after)"
        )
    return bracket


def carried_on(
    rows: Sequence[HistoryRow], bracket: Bracket, names: Sequence[tuple[str, str]]
) -> dict[str, tuple[int, int]]:
    """For each (type, name) the requests made and failures added across the bracket; raises
    `LoadNotShown` when one of them made no request or added a failure."""
    if not names:
        raise LoadNotShown("no endpoint kind of the load was named to check")
    figures: dict[str, tuple[int, int]] = {}
    for type_, name in names:
        series = _series(rows, name, type_)
        at_start = [r for r in series if r.timestamp == bracket.before.timestamp]
        at_end = [r for r in series if r.timestamp == bracket.after.timestamp]
        if not at_start or not at_end:
            raise LoadNotShown(f"'{name}' has no statistics at both ends of the checks")
        made = at_end[-1].requests - at_start[0].requests
        failed = at_end[-1].failures - at_start[0].failures
        figures[name] = (made, failed)
    idle = [n for n, (made, _f) in figures.items() if made <= 0]
    if idle:
        raise LoadNotShown(f"the load made no {idle} request during the checks")
    failing = {n: f for n, (_m, f) in figures.items() if f > 0}
    if failing:
        raise LoadNotShown(f"the load's requests failed during the checks: {failing}")
    return figures
