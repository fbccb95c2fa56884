"""Run one DM region: `python -m services.dm.main --region us --home .roomtrust`."""

from __future__ import annotations

from pathlib import Path

from services.common.runtime import run_region
from services.dm.api.app import build_app

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

if __name__ == "__main__":
    run_region("dm", MIGRATIONS, build_app)
