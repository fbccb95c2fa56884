"""The device load that features/under_load.feature runs beside its checks: which scenario, how
many devices against which DM region, and when Locust's statistics show it fully running."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from load.kinds import endpoint
from load.window import AGGREGATED, HistoryRow

ROOT = Path(__file__).resolve().parents[2]
LOAD_SCENARIO = ROOT / "scenarios" / "load-300.yaml"
LOAD_NAME = "load-300"
LOAD_USERS = 300
LOAD_REGION = "us"


def latest(rows: Sequence[HistoryRow], name: str) -> HistoryRow | None:
    """The newest statistics row of a request name (or of `AGGREGATED`), if any."""
    mine = [r for r in rows if r.name == name]
    return max(mine, key=lambda r: r.timestamp) if mine else None


def load_is_ready(rows: Sequence[HistoryRow], users: int) -> bool:
    """Every user runs, every device has enrolled (retries after a failure count once), and
    telemetry flows."""
    total = latest(rows, AGGREGATED)
    enrolled = latest(rows, endpoint("dm", "enroll"))
    telemetry = latest(rows, endpoint("dm", "telemetry"))
    return bool(
        total
        and total.users >= users
        and enrolled
        and enrolled.requests - enrolled.failures >= users
        and telemetry
        and telemetry.requests > 0
    )
