"""DM data retention beside the diagnostics bundles (`diagnostics.purge_expired`): telemetry
readings older than `dm_telemetry_retention_days` (180 by default) are deleted by the region's
retention job (`api/background.py`). The seed states no DM figure; 180 days, like the meeting
side's, is the project's choice (docs/dm-api.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from services.dm.store.models import TelemetryReading


def purge_telemetry(session: Session, now: dt.datetime, days: int) -> int:
    """Delete the readings received more than `days` days before `now`; returns how many."""
    cutoff = now - dt.timedelta(days=days)
    result = session.execute(delete(TelemetryReading).where(TelemetryReading.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
