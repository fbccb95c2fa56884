"""The enterprise's settings: chat, recording and streaming switches and the contract end."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller
from services.meeting.domain import enterprise

router = APIRouter()


@router.get("/v1/enterprise/settings", response_model=responses.SettingsOut)
async def get_settings(caller: Caller) -> dict[str, Any]:
    return await caller.run(
        lambda s, me: enterprise.settings_view(enterprise.enterprise_of(s, me.enterprise_id))
    )


@router.put("/v1/enterprise/settings", response_model=responses.SettingsOut)
async def put_settings(body: schemas.SettingsIn, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: enterprise.settings_view(
            enterprise.update_settings(s, me, body.changes(), now)
        )
    )
