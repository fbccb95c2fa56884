"""Staged firmware rollouts: create, list, look at, and control (start, pause, resume, abort...).

Rollouts run in the `RolloutEngine`, on the group committer's writer thread; every command the
engine queues goes out at once over the devices' own command channels.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from services.dm.api.deps import AdminAuth, JsonObject, State
from services.dm.api.schemas import RolloutOut
from services.dm.domain.accounts import AdminIdentity

router = APIRouter(tags=["rollouts"])


@router.post("/v1/rollouts", status_code=201, response_model=RolloutOut)
async def create_rollout(body: JsonObject, admin: AdminAuth, state: State) -> dict[str, Any]:
    """The body is the rollout plan; the engine checks every field of it."""
    now = state.now()
    engine = state.engine
    return await admin.run_in_engine(
        lambda s, who: engine.status_of(s, engine.create(s, who, body, now))
    )


@router.get("/v1/rollouts", response_model=list[RolloutOut])
async def list_rollouts(admin: AdminAuth, state: State) -> list[dict[str, Any]]:
    return await admin.run_in_engine(state.engine.list_rollouts)


@router.get("/v1/rollouts/{rollout_id}", response_model=RolloutOut)
async def rollout_status(rollout_id: str, admin: AdminAuth, state: State) -> dict[str, Any]:
    engine = state.engine
    return await admin.run_in_engine(lambda s, who: engine.status(s, who, rollout_id))


@router.post("/v1/rollouts/{rollout_id}/{op}", response_model=RolloutOut)
async def control_rollout(
    rollout_id: str, op: str, admin: AdminAuth, state: State
) -> dict[str, Any]:
    now = state.now()
    engine = state.engine

    def job(s: Session, who: AdminIdentity) -> dict[str, Any]:
        if op == "start":
            row = engine.start(s, who, rollout_id, now)
        else:
            row = engine.control(s, who, rollout_id, op, now)
        return engine.status_of(s, row)

    return await admin.run_in_engine(job)
