"""Run one DM region: `roomtrust serve dm --region us` (or `python -m services.dm.main --region us`).

Its settings come from ROOMTRUST_* (services/common/settings.py); `--home` and `--port` override
ROOMTRUST_HOME and ROOMTRUST_PORT.
"""

from __future__ import annotations

from pathlib import Path

from services.common.runtime import run_region
from services.dm.api.app import build_app

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def main(argv: list[str] | None = None) -> None:
    run_region("dm", MIGRATIONS, build_app, argv)


if __name__ == "__main__":
    main()
