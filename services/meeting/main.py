"""Run one meeting region: `python -m services.meeting.main --region sa --home .roomtrust`."""

from __future__ import annotations

from pathlib import Path

from services.common.runtime import run_region
from services.meeting.api.app import build_app

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

if __name__ == "__main__":
    run_region("meeting", MIGRATIONS, build_app)
