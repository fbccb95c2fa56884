"""Negative controls of the `under_load` checks (roomtrust/comply/checks/under_load.py): telemetry of
the load stored with an unlisted field or not at all, checks made outside the load's window or
with fewer devices than the load needs, and load requests that stalled or failed meanwhile, over
Locust statistics rows as `load.window` reads them."""

from __future__ import annotations

import pytest

from load.window import HistoryRow, running_throughout
from roomtrust.comply.checks import under_load
from roomtrust.comply.negative import Case, Controls, all_cases

T0 = 1_800_000_000
KINDS = [("HTTP", "dm heartbeat"), ("HTTP", "dm telemetry")]


def history(
    users: int = 300, seconds: int = 10, failing: str = "", idle: str = "", only: str = ""
) -> list[HistoryRow]:
    """Locust's rows: Aggregated plus heartbeat and telemetry, one row a second; `failing` adds a
    failure a second to that kind, `idle` stops its requests, `only` keeps that name alone."""
    rows = []
    for i in range(seconds):
        rows.append(HistoryRow(T0 + i, users, "", "Aggregated", 150 * (i + 1), 0))
        for _type, name in KINDS:
            made = 0 if name == idle else 75 * (i + 1)
            rows.append(HistoryRow(T0 + i, users, "HTTP", name, made, i if name == failing else 0))
    return [r for r in rows if not only or r.name == only]


BRACKET = running_throughout(history(), T0 + 3.5, T0 + 6, 300)

CONTROLS: list[Controls] = [
    Controls(
        under_load.listed_telemetry_stored,
        {"reports": [{"status": "online"}, {"firmware_version": "3.1.4", "network_type": "lan"}]},
        {
            "transcript-stored": (
                {"reports": [{"status": "online", "meeting_transcript": "Q3 numbers"}]},
                "outside DM-09's list: ['meeting_transcript']",
            ),
            "empty": ({"reports": []}, "selected no telemetry rows"),
        },
    ),
    Controls(
        under_load.load_ran,
        {"rows": history(), "started": T0 + 3.5, "ended": T0 + 6, "users": 300, "provisioned": 300},
        {
            "stopped": ({"ended": T0 + 12}, "the load had stopped or stalled"),
            "not-started": ({"started": T0 - 5}, "the load had not started"),
            "fewer-users": ({"rows": history(users=120)}, "fewer than 300 users"),
            "few-provisioned": ({"provisioned": 120}, "only 120 device"),
            "empty": ({"rows": []}, "selected no rows of the load's statistics"),
        },
    ),
    Controls(
        under_load.load_carried_on,
        {"rows": history(), "bracket": BRACKET, "kinds": KINDS},
        {
            "heartbeats-failing": ({"rows": history(failing="dm heartbeat")}, "failed during"),
            "telemetry-stalled": ({"rows": history(idle="dm telemetry")}, "made no"),
            "kind-missing": (
                {"rows": history(only="Aggregated")},
                "'dm heartbeat' has no statistics at both ends",
            ),
            "no-kinds": ({"kinds": []}, "selected no request kinds"),
            "empty": ({"rows": []}, "selected no rows of the load's statistics"),
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
