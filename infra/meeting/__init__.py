"""The meeting cloud on AWS: one `MeetingRegion` component per region (na, sa, eu, asia)."""

from infra.meeting.region import MEETING_AWS_REGIONS, MeetingRegion, MeetingRegionArgs

__all__ = ["MEETING_AWS_REGIONS", "MeetingRegion", "MeetingRegionArgs"]
