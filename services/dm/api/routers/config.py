"""Bulk configuration (DM-13): versioned profiles, pushing one to the devices it targets over their
command channels, and the drift between what is wanted and what devices applied."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.dm.api.delivery import deliver
from services.dm.api.deps import AdminAuth, State
from services.dm.api.schemas import (
    ConfigProfileIn,
    ConfigProfileOut,
    ConfigPushOut,
    ConfigPushStatusOut,
    DriftOut,
)
from services.dm.domain import configuration

router = APIRouter(tags=["configuration"])


@router.post("/v1/config/profiles", status_code=201, response_model=ConfigProfileOut)
async def create_profile(body: ConfigProfileIn, admin: AdminAuth, state: State) -> ConfigProfileOut:
    now = state.now()
    profile = await admin.run(
        lambda s, who: configuration.create_profile(
            s, who, name=body.name, values=body.values, target=body.target, now=now
        ),
    )
    return ConfigProfileOut(
        profile_id=profile.id,
        name=profile.name,
        version=profile.version,
        values=profile.values,
        target=profile.target,
    )


@router.post("/v1/config/profiles/{profile_id}/push", response_model=ConfigPushOut)
async def push_profile(profile_id: int, admin: AdminAuth, state: State) -> ConfigPushOut:
    now = state.now()
    device_ids = await admin.run(
        lambda s, who: [d.id for d in configuration.push_profile(s, who, profile_id, now)],
    )
    online = await deliver(state, device_ids)
    return ConfigPushOut(devices=len(device_ids), delivered_now=online, device_ids=device_ids)


@router.get("/v1/config/profiles/{profile_id}/status", response_model=ConfigPushStatusOut)
async def push_status(profile_id: int, admin: AdminAuth) -> dict[str, Any]:
    """The pushes of the profile's newest version as the devices acknowledged them."""
    return await admin.run(lambda s, who: configuration.push_status(s, who, profile_id))


@router.get("/v1/config/drift", response_model=list[DriftOut])
async def config_drift(admin: AdminAuth) -> list[dict[str, Any]]:
    return await admin.run(configuration.drift)
