"""The firmware catalogue (DM-05, MT-05): signed images per model and version, and their downloads.

An administrator uploads an image with its model and version. The service signs it with the
region's Ed25519 release key (its own key file, apart from the region CA) and keeps the signed
package in the region's object store. Each device that is to install it gets a download of its
own: a fresh AES-GCM key, handed to the device in its firmware command over its mTLS command
channel, under which the package is encrypted when the device fetches it (mTLS too). The key is
wiped once the device has reported the update.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import firmware, oplog
from services.common.errors import Conflict, Invalid, NotFound
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.catalogue import check_model
from services.dm.domain.ids import new_id
from services.dm.store.models import Device, FirmwareDownload, FirmwareImage, OperationLogEntry

MAX_IMAGE_BYTES = 64 * 1024 * 1024
DOWNLOAD_PATH = "/v1/device/firmware/{download_id}"


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> int: ...
    def get(self, key: str) -> bytes: ...


def upload_image(
    session: Session,
    admin: AdminIdentity,
    *,
    model: str | None,
    version: str | None,
    image: bytes,
    release_key: Ed25519PrivateKey,
    blobs: BlobStore,
    now: dt.datetime,
) -> FirmwareImage:
    """Sign an uploaded image and add it to the enterprise's catalogue."""
    if not model:
        raise Invalid("give the image's device model", field="model")
    check_model(model)
    if not version:
        raise Invalid("give the image's version", field="version")
    firmware.parse_version(version)
    if not image:
        raise Invalid("the image is empty", field="image")
    if len(image) > MAX_IMAGE_BYTES:
        raise Invalid(f"an image is at most {MAX_IMAGE_BYTES} bytes", field="image")
    if session.scalar(
        select(FirmwareImage.id).where(
            FirmwareImage.enterprise_id == admin.enterprise_id,
            FirmwareImage.model == model,
            FirmwareImage.version == version,
        )
    ):
        raise Conflict(f"{model} {version} is already in the catalogue", field="version")
    signed = firmware.sign_image(release_key, model=model, version=version, image=image)
    record = FirmwareImage(
        id=new_id(),
        enterprise_id=admin.enterprise_id,
        model=model,
        version=version,
        size=len(image),
        sha256=signed.manifest.sha256,
        blob_key="",
        created_at=now,
    )
    record.blob_key = f"{record.id}.rtfw"
    blobs.put(record.blob_key, firmware.pack(signed))
    session.add(record)
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="firmware.upload",
        enterprise_id=admin.enterprise_id,
        target=record.id,
        model=model,
        version=version,
        size=len(image),
        sha256=record.sha256,
    )
    return record


def image_dict(image: FirmwareImage) -> dict[str, object]:
    return {
        "image_id": image.id,
        "model": image.model,
        "version": image.version,
        "size": image.size,
        "sha256": image.sha256,
        "signature": "Ed25519",
    }


def list_images(session: Session, admin: AdminIdentity) -> list[FirmwareImage]:
    return list(
        session.scalars(
            select(FirmwareImage)
            .where(FirmwareImage.enterprise_id == admin.enterprise_id)
            .order_by(FirmwareImage.model, FirmwareImage.created_at)
        )
    )


def own_image(session: Session, admin: AdminIdentity, image_id: object) -> FirmwareImage:
    image = session.get(FirmwareImage, image_id) if isinstance(image_id, str) else None
    if image is None or image.enterprise_id != admin.enterprise_id:
        raise NotFound("no such firmware image in this enterprise", field="image_id")
    return image


def new_download(
    session: Session,
    device: Device,
    image: FirmwareImage,
    rollout_id: str | None,
    now: dt.datetime,
) -> tuple[FirmwareDownload, bytes]:
    """A download of `image` for `device` with its own fresh key; returns the row and the key."""
    key = firmware.new_download_key()
    download = FirmwareDownload(
        id=new_id(),
        image_id=image.id,
        device_id=device.id,
        rollout_id=rollout_id,
        key=base64.b64encode(key).decode(),
        created_at=now,
    )
    session.add(download)
    return download, key


def install_payload(
    download: FirmwareDownload, image: FirmwareImage, key: bytes, rollout_id: str | None
) -> dict[str, object]:
    """What a firmware command carries to the device over its mTLS channel."""
    return {
        "op": "install",
        "rollout_id": rollout_id,
        "image_id": image.id,
        "model": image.model,
        "version": image.version,
        "download": DOWNLOAD_PATH.format(download_id=download.id),
        "key": base64.b64encode(key).decode(),
    }


def open_download(
    session: Session, device: Device, download_id: str
) -> tuple[FirmwareDownload, str, bytes]:
    """A download for `device` only (read-only): the row, the package's object key and the
    download key."""
    download = session.get(FirmwareDownload, download_id)
    if download is None or download.device_id != device.id:
        raise NotFound("no such firmware download for this device", field="download_id")
    if download.key is None:
        raise Conflict("this download is finished; its key is gone", field="download_id")
    image = session.get(FirmwareImage, download.image_id)
    assert image is not None
    return download, image.blob_key, base64.b64decode(download.key)


def mark_downloaded(
    session: Session, download_id: str, now: dt.datetime
) -> FirmwareDownload | None:
    download = session.get(FirmwareDownload, download_id)
    if download is not None:
        download.downloaded_at = download.downloaded_at or now
    return download


def encrypt_package(package: bytes, key: bytes, download_id: str) -> bytes:
    """The package as it travels: AES-GCM under the download's key, bound to the download id."""
    return firmware.encrypt_download(package, key, context=download_id.encode())


def finish_download(session: Session, download_id: object) -> None:
    """Wipe a download's key once the device has reported the update."""
    download = session.get(FirmwareDownload, download_id) if isinstance(download_id, str) else None
    if download is not None:
        download.key = None


def download_id_of(path: object) -> str | None:
    """The download id in a firmware command's `download` path."""
    prefix = DOWNLOAD_PATH.format(download_id="")
    if isinstance(path, str) and path.startswith(prefix):
        return path[len(prefix) :]
    return None
