"""Remote diagnosis (DM-05): an administrator asks a device for a bundle over its command channel,
the device uploads it over mutual TLS, and administrators of its enterprise list and fetch it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.dm.api.delivery import deliver
from services.dm.api.deps import AdminAuth, DeviceAuth, JsonObject, State
from services.dm.api.schemas import (
    BundleUploadedOut,
    DiagnosticBundleContent,
    DiagnosticBundleOut,
    DiagnosticsRequestedOut,
)
from services.dm.domain import diagnostics

router = APIRouter(tags=["diagnostics"])


@router.post(
    "/v1/devices/{device_id}/diagnostics", status_code=202, response_model=DiagnosticsRequestedOut
)
async def request_diagnostics(
    device_id: str, admin: AdminAuth, state: State
) -> DiagnosticsRequestedOut:
    now = state.now()
    command = await admin.run(lambda s, who: diagnostics.request(s, who, device_id, now))
    online = await deliver(state, [device_id])
    return DiagnosticsRequestedOut(command_id=command.id, delivered_now=bool(online))


@router.get("/v1/diagnostics", response_model=list[DiagnosticBundleOut])
async def list_diagnostics(admin: AdminAuth) -> list[DiagnosticBundleOut]:
    return await admin.run(
        lambda s, who: [
            DiagnosticBundleOut(
                bundle_id=b.id,
                device_id=b.device_id,
                size=b.size,
                created_at=b.created_at.isoformat(),
            )
            for b in diagnostics.list_bundles(s, who)
        ],
    )


@router.get("/v1/diagnostics/{bundle_id}", response_model=DiagnosticBundleContent)
async def fetch_diagnostics(bundle_id: str, admin: AdminAuth, state: State) -> Response:
    """The bundle exactly as stored (its bytes are sent as they are)."""
    now = state.now()
    blobs = state.diagnostic_blobs
    data = await admin.run(lambda s, who: diagnostics.fetch(s, who, bundle_id, blobs, now))
    return Response(data, media_type="application/json")


@router.post("/v1/device/diagnostics", status_code=201, response_model=BundleUploadedOut)
async def upload_diagnostics(
    payload: JsonObject, device: DeviceAuth, state: State
) -> BundleUploadedOut:
    now = state.now()
    blobs = state.diagnostic_blobs
    bundle = await device.commit(lambda s, d: diagnostics.upload(s, d, payload, blobs, now))
    return BundleUploadedOut(bundle_id=bundle.id)
