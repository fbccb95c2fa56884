"""Checks of features/under_load.feature (DM-02, 04, 09, 11 while 300 devices load DM region us):
what the load itself stored, and, from Locust's own statistics (`load.window`), that the load ran
and was served across each scenario's checks."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from load.window import Bracket, HistoryRow, LoadNotShown, carried_on, running_throughout
from roomtrust.comply.checks import CheckFailed, check, require, selected
from services.dm.domain.fields import TELEMETRY_FIELDS


@check("under_load")
def listed_telemetry_stored(
    reports: Sequence[Mapping[str, Any]], allowed: Collection[str] = tuple(TELEMETRY_FIELDS)
) -> None:
    """The load's devices had telemetry stored during the checks, and it holds only fields of
    DM-09's device-management category (`reports`: the field sets of the stored rows)."""
    selected(reports, "telemetry rows stored for the load's devices during the checks")
    extra = sorted({str(k) for report in reports for k in report} - set(allowed))
    require(not extra, f"the load's stored telemetry holds fields outside DM-09's list: {extra}")


@check("under_load")
def load_ran(
    rows: Sequence[HistoryRow], started: float, ended: float, users: int, provisioned: int
) -> None:
    """The load ran with `users` users across `[started, ended]` (epoch seconds), each of them
    one provisioned device (`rows`: Locust's statistics history)."""
    selected(rows, "rows of the load's statistics")
    require(
        provisioned >= users,
        f"only {provisioned} device(s) were provisioned for a load of {users}",
    )
    try:
        running_throughout(rows, started, ended, users)
    except LoadNotShown as exc:
        raise CheckFailed(str(exc)) from None


@check("under_load")
def load_carried_on(
    rows: Sequence[HistoryRow], bracket: Bracket, kinds: Sequence[tuple[str, str]]
) -> None:
    """Each of the load's request kinds (type, name) kept being made, and none failed, across
    the rows around the checks (`bracket`: as `load.window.running_throughout` found it)."""
    selected(kinds, "request kinds of the load")
    selected(rows, "rows of the load's statistics")
    try:
        carried_on(rows, bracket, kinds)
    except LoadNotShown as exc:
        raise CheckFailed(str(exc)) from None
