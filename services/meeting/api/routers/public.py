"""Public routes: health, the permission matrix and conference placement (MT-01)."""

from __future__ import annotations

from fastapi import APIRouter

from protocol.regions import MEETING_REGIONS
from services.meeting.api import responses, schemas
from services.meeting.api.deps import Region
from services.meeting.domain import permissions, placement

router = APIRouter()


@router.get("/healthz", response_model=responses.Health)
async def healthz(region: Region) -> responses.Health:
    return responses.Health(
        service="meeting",
        region=region.region,
        status="ok",
        live_conferences=region.signaling.live_count(),
    )


@router.get("/v1/permissions", response_model=responses.PermissionMatrix)
async def permission_matrix() -> responses.PermissionMatrix:
    return responses.PermissionMatrix(
        permissions=dict(permissions.PERMISSIONS),
        roles=permissions.matrix(),
        customizable=sorted(permissions.CUSTOMIZABLE),
        room_system=sorted(permissions.ROOM_SYSTEM),
    )


@router.post("/v1/placement", response_model=responses.PlacementOut)
async def place(body: schemas.PlacementIn, region: Region) -> responses.PlacementOut:
    chosen = placement.place(body.participant_locations, region.matrix, MEETING_REGIONS)
    return responses.PlacementOut(
        region=chosen.region,
        mean_latency_ms=chosen.mean_latency_ms,
        max_latency_ms=chosen.max_latency_ms,
        candidates=chosen.candidates,
    )


@router.get("/v1/placement/locations", response_model=list[str])
async def locations(region: Region) -> list[str]:
    return sorted(region.matrix)
