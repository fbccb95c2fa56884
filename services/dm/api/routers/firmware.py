"""Signed firmware: the region's release key, the image catalogue, and a device's own download.

Images are signed with the region's release key (`<region home>/release/`, apart from the CA in
`<region home>/ca/`) and kept in the region's object store. A device downloads its package over
mutual TLS, encrypted under the per-download key that reached it in its firmware command.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from services.common.errors import Invalid
from services.common.firmware import public_key_pem
from services.dm.api.background import spawn
from services.dm.api.delivery import in_engine
from services.dm.api.deps import AdminAuth, DeviceAuth, State
from services.dm.api.schemas import FirmwareImageOut, ReleaseKeyOut
from services.dm.domain import images
from services.dm.store.models import Device

router = APIRouter(tags=["firmware"])

PACKAGE = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@router.get("/v1/firmware/release-key", response_model=ReleaseKeyOut)
async def release_public_key(state: State) -> ReleaseKeyOut:
    """The public half of the region's release key: what a device model carries built in."""
    return ReleaseKeyOut(
        algorithm="Ed25519", public_key_pem=public_key_pem(state.release_key).decode()
    )


@router.post("/v1/firmware/images", status_code=201, response_model=FirmwareImageOut)
async def upload_image(
    request: Request,
    admin: AdminAuth,
    state: State,
    model: str | None = None,
    version: str | None = None,
) -> dict[str, object]:
    """The body is the image itself; the region signs it with its release key."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > images.MAX_IMAGE_BYTES:
        raise Invalid(f"an image is at most {images.MAX_IMAGE_BYTES} bytes", field="image")
    data = await request.body()
    now = state.now()
    return await admin.run(
        lambda s, who: images.image_dict(
            images.upload_image(
                s,
                who,
                model=model,
                version=version,
                image=data,
                release_key=state.release_key,
                blobs=state.firmware_blobs,
                now=now,
            )
        ),
    )


@router.get("/v1/firmware/images", response_model=list[FirmwareImageOut])
async def list_images(admin: AdminAuth) -> list[dict[str, object]]:
    return await admin.run(
        lambda s, who: [images.image_dict(i) for i in images.list_images(s, who)]
    )


@router.get(
    "/v1/device/firmware/{download_id}",
    response_class=Response,
    responses={200: {"description": "the signed package, encrypted", "content": PACKAGE}},
)
async def download_firmware(download_id: str, device: DeviceAuth, state: State) -> Response:
    """A device's own download (mTLS): the signed package, encrypted under the download's
    key, which reached the device in its firmware command over the command channel."""
    now = state.now()

    def read(s: Session, d: Device) -> tuple[str, str, bytes]:
        _download, blob_key, key = images.open_download(s, d, download_id)
        return d.id, blob_key, key

    device_id, blob_key, key = await device.read(read)
    data = await run_in_threadpool(
        lambda: images.encrypt_package(state.firmware_blobs.get(blob_key), key, download_id)
    )
    started = partial(
        state.engine.download_started, device_id=device_id, download_id=download_id, now=now
    )
    spawn(state, in_engine(state, started))  # recorded without holding up the answer
    return Response(data, media_type="application/octet-stream")
