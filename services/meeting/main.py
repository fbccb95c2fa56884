"""Run one meeting region: `python -m services.meeting.main --region sa --home .roomtrust`.

The region's relay pool is its media-key hook: keys come from the region's relays (found by their
ready files under `<home>/meeting/<region>/relays/`), and the pool moves calls when a relay fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.runtime import RegionRuntime, run_region
from services.meeting.api.app import build_app
from services.meeting.media.pool import RelayPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_region(runtime: RegionRuntime) -> Any:
    """The region's app with its relay pool (`runtime.directory` is `<home>/meeting/<region>`)."""
    home = runtime.directory.parents[1]
    return build_app(runtime, media_keys=RelayPool(home, runtime.region))


if __name__ == "__main__":
    run_region("meeting", MIGRATIONS, build_region)
