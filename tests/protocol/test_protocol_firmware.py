"""protocol.firmware: the device's half of the package format reads what the service's half writes,
and a refusal carries the wire code FirmwareRejected with its own reason code."""

from __future__ import annotations

import pytest

from protocol import firmware as fw
from protocol.errors import ErrorCode
from services.common import firmware as service

MODEL = "MeetingBar A20"
IMAGE = bytes(range(256)) * 16


def test_a_package_the_service_signs_and_encrypts_is_read_by_the_device_format() -> None:
    key = service.generate_release_key()
    package = service.pack(service.sign_image(key, model=MODEL, version="2.1", image=IMAGE))
    assert package.startswith(fw.PACKAGE_MAGIC)
    download_key = service.new_download_key()
    data = service.encrypt_download(package, download_key, context=b"dl-1")
    plain = fw.decrypt_download(data, download_key, context=b"dl-1")
    public = fw.load_public_key(service.public_key_pem(key))
    signed = fw.verify_package(plain, public, model=MODEL, installed_version="2.0")
    assert signed.image == IMAGE and signed.manifest == fw.Manifest.of(MODEL, "2.1", IMAGE)


@pytest.mark.parametrize(
    ("model", "installed", "context", "rejection"),
    [
        ("MeetingBar A30", "2.0", b"dl-1", fw.Rejection.WRONG_MODEL),
        (MODEL, "3.0", b"dl-1", fw.Rejection.DOWNGRADE),
        (MODEL, "2.0", b"dl-2", fw.Rejection.DECRYPT_FAILED),
    ],
)
def test_a_refusal_has_the_wire_code_and_its_own_reason(
    model: str, installed: str, context: bytes, rejection: fw.Rejection
) -> None:
    key = service.generate_release_key()
    package = service.pack(service.sign_image(key, model=MODEL, version="2.1", image=IMAGE))
    download_key = service.new_download_key()
    data = service.encrypt_download(package, download_key, context=b"dl-1")
    public = fw.load_public_key(service.public_key_pem(key))
    with pytest.raises(fw.FirmwareRejected) as refused:
        plain = fw.decrypt_download(data, download_key, context=context)
        fw.verify_package(plain, public, model=model, installed_version=installed)
    assert refused.value.rejection is rejection
    assert refused.value.as_dict()["error"] == ErrorCode.FIRMWARE_REJECTED == "FirmwareRejected"
    assert refused.value.as_dict()["field"] == "image"


def test_the_service_module_re_exports_the_format() -> None:
    assert service.verify_package is fw.verify_package
    assert service.FirmwareRejected is fw.FirmwareRejected
