"""Whether a load ran across a span of checks, from Locust's history CSV: the proof passes only when
rows before and after the span show the expected users, no stall and a growing request count, and
fails, saying why, when the checks fell outside the load or the load's requests failed meanwhile."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from load.window import (
    Bracket,
    HistoryRow,
    LoadNotShown,
    carried_on,
    parse_history,
    read_history,
    running_throughout,
)

# the header Locust 2.x writes to stats_stats_history.csv
HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
    "99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
T0 = 1_800_000_000
USERS = 300
KINDS = [("HTTP", "dm heartbeat"), ("HTTP", "dm telemetry")]


def _line(ts: int, users: int, type_: str, name: str, requests: int, failures: int) -> str:
    percentiles = ",".join(["80"] * 11)
    return f"{ts},{users},{type_},{name},150.0,0.0,{percentiles},{requests},{failures},80,90,10,900,120"


def history(
    seconds: int = 20,
    users: Iterable[int] | None = None,
    rate: int = 150,
    skip: Iterable[int] = (),
    failing_from: int | None = None,
) -> list[str]:
    """A load's history, one second per row set: heartbeats are a quarter of the requests."""
    counts = list(users) if users is not None else [USERS] * seconds
    lines = [HEADER]
    for i, n in enumerate(counts):
        if i in set(skip):
            continue
        total = rate * (i + 1)
        failures = 0 if failing_from is None or i < failing_from else 5 * (i - failing_from + 1)
        lines.append(_line(T0 + i, n, "HTTP", "dm heartbeat", total // 4, failures))
        lines.append(_line(T0 + i, n, "HTTP", "dm telemetry", total - total // 4, 0))
        lines.append(_line(T0 + i, n, "", "Aggregated", total, failures))
    return lines


def rows(**kwargs: int | Iterable[int] | None) -> list[HistoryRow]:
    return parse_history(history(**kwargs))  # type: ignore[arg-type]


def test_checks_inside_the_load_get_the_rows_around_them() -> None:
    bracket = running_throughout(rows(), T0 + 5.4, T0 + 8.2, USERS)
    assert bracket.before.timestamp == T0 + 4  # taken in [t, t + 1): the last one before 5.4
    assert bracket.after.timestamp == T0 + 9
    assert bracket.rows == 6
    assert bracket.requests == 150 * 5
    assert bracket.to_dict()["requests_during"] == 750


def test_the_history_is_read_from_the_file_and_a_torn_last_line_is_left_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stats_stats_history.csv"
    text = "\n".join(history(seconds=3)) + "\n" + f"{T0 + 3},300,HTTP,dm tele"
    path.write_text(text)
    read = read_history(path)
    assert len(read) == 9 and read[-1].name == "Aggregated" and read[-1].timestamp == T0 + 2
    assert read_history(path.parent / "missing.csv") == []


@pytest.mark.parametrize(
    ("started", "ended", "reason"),
    [
        (T0 - 30, T0 + 5, "the load had not started"),
        (T0 + 0.5, T0 + 5, "the load had not started"),  # the first row may be after 0.5
        (T0 + 5, T0 + 25, "the load had stopped or stalled"),
        (T0 + 30, T0 + 40, "the load had stopped or stalled"),
        (T0 + 8, T0 + 5, "ends"),
    ],
)
def test_checks_outside_the_load_window_are_not_shown_under_load(
    started: float, ended: float, reason: str
) -> None:
    with pytest.raises(LoadNotShown, match=reason):
        running_throughout(rows(), started, ended, USERS)


def test_no_statistics_at_all_show_no_load() -> None:
    with pytest.raises(LoadNotShown, match="no rows"):
        running_throughout([], T0, T0 + 1, USERS)


def test_fewer_users_during_the_checks_fail() -> None:
    users = [USERS] * 6 + [250] * 3 + [USERS] * 11
    with pytest.raises(LoadNotShown, match=r"fewer than 300 users.*\(1800000006, 250\)"):
        running_throughout(rows(users=users), T0 + 5.5, T0 + 10, USERS)
    # the same history proves a span where all 300 ran
    running_throughout(rows(users=users), T0 + 10.5, T0 + 14, USERS)


def test_a_stall_in_the_statistics_fails() -> None:
    with pytest.raises(LoadNotShown, match="stopped during the checks"):
        running_throughout(rows(skip=range(6, 11)), T0 + 5.5, T0 + 12, USERS)


def test_a_load_that_made_no_request_fails() -> None:
    flat = [HistoryRow(T0 + i, USERS, "", "Aggregated", 1000, 0) for i in range(10)]
    with pytest.raises(LoadNotShown, match="made no request"):
        running_throughout(flat, T0 + 3, T0 + 5, USERS)


def _bracket(started: float = T0 + 5.5, ended: float = T0 + 8, **kwargs: object) -> Bracket:
    return running_throughout(rows(**kwargs), started, ended, USERS)  # type: ignore[arg-type]


def test_the_load_carried_on_when_its_requests_grew_without_failures() -> None:
    figures = carried_on(rows(), _bracket(), KINDS)
    # rows T0+4 and T0+8: 4 s at 150 requests/s, a quarter of them heartbeats
    assert figures == {"dm heartbeat": (150, 0), "dm telemetry": (450, 0)}


def test_failures_of_the_load_during_the_checks_fail() -> None:
    broken = rows(failing_from=7)
    with pytest.raises(LoadNotShown, match=r"failed during the checks: \{'dm heartbeat': 10\}"):
        carried_on(broken, running_throughout(broken, T0 + 5.5, T0 + 8, USERS), KINDS)


def test_a_kind_without_statistics_or_requests_fails() -> None:
    bracket = _bracket()
    with pytest.raises(LoadNotShown, match="'dm command' has no statistics"):
        carried_on(rows(), bracket, [("WSS recv", "dm command")])
    idle = [r for r in rows() if r.name != "dm telemetry"] + [
        HistoryRow(T0 + i, USERS, "HTTP", "dm telemetry", 40, 0) for i in range(20)
    ]
    with pytest.raises(LoadNotShown, match=r"no \['dm telemetry'\] request"):
        carried_on(idle, bracket, KINDS)
    with pytest.raises(LoadNotShown, match="no endpoint kind"):
        carried_on(rows(), bracket, [])
