"""The regions each service runs in: the DM service in three, the meeting service in four."""

from __future__ import annotations

from typing import Final

DM_REGIONS: Final = ("us", "eu", "au")
MEETING_REGIONS: Final = ("na", "sa", "eu", "asia")
REGIONS: Final = {"dm": DM_REGIONS, "meeting": MEETING_REGIONS}
