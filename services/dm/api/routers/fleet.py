"""Sites and devices: the administrator deploys a device (by MAC) to a site, lists the fleet with
each device's status, and un-deploys it (its certificate is revoked, its channel closed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.dm.api.deps import AdminAuth, State
from services.dm.api.schemas import DeviceIn, DeviceOut, SiteIn, SiteOut, UndeployedOut
from services.dm.domain import fleet

router = APIRouter(tags=["fleet"])


@router.post("/v1/sites", status_code=201, response_model=SiteOut)
async def create_site(body: SiteIn, admin: AdminAuth, state: State) -> SiteOut:
    now = state.now()
    site = await admin.run(
        lambda s, who: fleet.create_site(
            s,
            who,
            name=body.name,
            time_zone=body.time_zone,
            latitude=body.latitude,
            longitude=body.longitude,
            server_id=body.server_id,
            now=now,
        ),
    )
    return SiteOut(site_id=site.id, **body.model_dump())


@router.get("/v1/sites", response_model=list[SiteOut])
async def list_sites(admin: AdminAuth) -> list[SiteOut]:
    sites = await admin.run(fleet.list_sites)
    return [
        SiteOut(
            site_id=s.id,
            name=s.name,
            time_zone=s.time_zone,
            latitude=s.latitude,
            longitude=s.longitude,
            server_id=s.server_id,
        )
        for s in sites
    ]


@router.post("/v1/devices", status_code=201, response_model=DeviceOut)
async def deploy(body: DeviceIn, admin: AdminAuth, state: State) -> dict[str, Any]:
    now = state.now()
    return await admin.run(
        lambda s, who: fleet.DeviceView(
            fleet.deploy_device(
                s,
                who,
                mac=body.mac,
                serial_number=body.serial_number,
                model=body.model,
                site_id=body.site_id,
                name=body.name,
                tags=body.tags,
                now=now,
            ),
            "deployed",
        ).as_dict(),
    )


@router.get("/v1/devices", response_model=list[DeviceOut])
async def list_devices(admin: AdminAuth, state: State) -> list[dict[str, Any]]:
    now = state.now()
    return await admin.run(
        lambda s, who: [
            view.as_dict() for view in fleet.list_devices(s, who, now, state.offline_after)
        ],
    )


@router.delete("/v1/devices/{device_id}", response_model=UndeployedOut)
async def undeploy(device_id: str, admin: AdminAuth, state: State) -> UndeployedOut:
    now = state.now()
    device = await admin.run(lambda s, who: fleet.undeploy_device(s, who, device_id, now))
    await state.hub.close_device(device.id, "certificate revoked")  # the others on the signal
    return UndeployedOut(device_id=device.id, status="revoked")
