"""Segment resources (`segment.resources`): groups of accounts and their recording quota; and Teams
access (`teams.access`): whether the interop gateway's room systems may join the enterprise's
conferences. The rules are in domain/segments.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller
from services.meeting.domain import segments

router = APIRouter()


@router.post("/v1/segments", status_code=201, response_model=responses.SegmentOut)
async def create_segment(body: schemas.SegmentIn, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: segments.segment_view(
            s,
            segments.create_segment(
                s,
                me,
                name=body.name,
                members=body.members,
                recording_minutes=body.recording_minutes,
                now=now,
            ),
            now,
        )
    )


@router.get("/v1/segments", response_model=list[responses.SegmentOut])
async def list_segments(caller: Caller) -> list[dict[str, Any]]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: [segments.segment_view(s, g, now) for g in segments.list_segments(s, me)]
    )


@router.put("/v1/segments/{segment_id}/resources", response_model=responses.SegmentOut)
async def put_resources(
    segment_id: str, body: schemas.SegmentResourcesIn, caller: Caller
) -> dict[str, Any]:
    """The segment's recording quota in minutes for its members together (null: none)."""
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: segments.segment_view(
            s, segments.set_resources(s, me, segment_id, body.recording_minutes, now), now
        )
    )


@router.put("/v1/segments/{segment_id}/members", response_model=responses.SegmentOut)
async def put_members(
    segment_id: str, body: schemas.SegmentMembersIn, caller: Caller
) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: segments.segment_view(
            s, segments.set_members(s, me, segment_id, body.members, now), now
        )
    )


@router.get("/v1/enterprise/teams-access", response_model=responses.TeamsAccessOut)
async def get_teams_access(caller: Caller) -> dict[str, Any]:
    return await caller.run(segments.teams_access_view)


@router.put("/v1/enterprise/teams-access", response_model=responses.TeamsAccessOut)
async def put_teams_access(body: schemas.TeamsAccessIn, caller: Caller) -> dict[str, Any]:
    """Whether the region's interop gateway (SIP, H.323) may bring room systems into the
    enterprise's conferences; checked when a gateway leg joins."""
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: segments.set_teams_access(s, me, body.interop_enabled, now)
    )
