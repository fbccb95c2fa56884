"""`GET /healthz`: the region is up, how many devices it holds and how many are connected here,
and whether this process leads the region (its replicas share the store)."""

from __future__ import annotations

from fastapi import APIRouter

from services.dm.api.deps import State
from services.dm.api.schemas import HealthOut
from services.dm.store import queries

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz(state: State) -> HealthOut:
    count = await state.in_tx(queries.device_count)
    return HealthOut(
        service="dm",
        region=state.region,
        status="ok",
        devices=count,
        connected=state.hub.count,
        leader=state.leader,
    )
