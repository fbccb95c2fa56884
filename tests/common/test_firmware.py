"""Unit tests of signed and encrypted firmware images (no files, no network)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common import firmware
from services.common.ca import key_pem, new_private_key
from services.common.errors import Invalid
from services.common.firmware import FirmwareRejected

MODEL = "MeetingBar A20"
IMAGE = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def release_key() -> Ed25519PrivateKey:
    return firmware.generate_release_key()


def signed(key: Ed25519PrivateKey, version: str = "264.410.1.0") -> bytes:
    return firmware.pack(firmware.sign_image(key, model=MODEL, version=version, image=IMAGE))


def rejection(
    blob: bytes,
    key: Ed25519PrivateKey,
    *,
    model: str = MODEL,
    installed: str = "264.410.0.5",
) -> str:
    with pytest.raises(FirmwareRejected) as refused:
        firmware.verify_package(blob, key.public_key(), model=model, installed_version=installed)
    return refused.value.rejection


# -- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("264.410.0.5", "264.410.0.5", 0),
        ("264.410.0.10", "264.410.0.9", 1),
        ("9.0", "10.0", -1),
        ("1.2", "1.2.0", 0),
        ("1.2.0.1", "1.2", 1),
    ],
)
def test_dotted_versions_compare_numerically(a: str, b: str, expected: int) -> None:
    assert firmware.compare_versions(a, b) == expected
    assert firmware.compare_versions(b, a) == -expected


@pytest.mark.parametrize("bad", ["", "1..2", "v1.2", "1.2-beta", "1.2."])
def test_an_unreadable_version_is_refused(bad: str) -> None:
    with pytest.raises(Invalid) as refused:
        firmware.parse_version(bad)
    assert refused.value.field == "version"


# -- signing and verification ------------------------------------------------------------------


def test_a_signed_package_verifies_and_keeps_its_manifest(
    release_key: Ed25519PrivateKey,
) -> None:
    result = firmware.verify_package(
        signed(release_key),
        release_key.public_key(),
        model=MODEL,
        installed_version="264.410.0.5",
    )
    assert result.image == IMAGE
    assert result.manifest == firmware.Manifest(
        MODEL, "264.410.1.0", hashlib.sha256(IMAGE).hexdigest(), len(IMAGE)
    )


def test_the_same_version_may_be_installed_again(release_key: Ed25519PrivateKey) -> None:
    blob = signed(release_key, "264.410.0.5")
    firmware.verify_package(
        blob, release_key.public_key(), model=MODEL, installed_version="264.410.0.5"
    )


def test_a_tampered_image_is_refused(release_key: Ed25519PrivateKey) -> None:
    good = firmware.sign_image(release_key, model=MODEL, version="264.410.1.0", image=IMAGE)
    bad = replace(good, image=IMAGE[:-1] + b"\x00")
    assert rejection(firmware.pack(bad), release_key) == firmware.IMAGE_MISMATCH


def test_a_tampered_manifest_breaks_the_signature(release_key: Ed25519PrivateKey) -> None:
    good = firmware.sign_image(release_key, model=MODEL, version="264.410.1.0", image=IMAGE)
    bad = replace(good, manifest=replace(good.manifest, version="264.999.0.0"))
    assert rejection(firmware.pack(bad), release_key) == firmware.BAD_SIGNATURE


def test_an_image_signed_with_another_key_is_refused(
    release_key: Ed25519PrivateKey,
) -> None:
    other = firmware.generate_release_key()
    assert rejection(signed(other), release_key) == firmware.BAD_SIGNATURE


def test_a_flipped_signature_bit_is_refused(release_key: Ed25519PrivateKey) -> None:
    good = firmware.sign_image(release_key, model=MODEL, version="264.410.1.0", image=IMAGE)
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    blob = firmware.pack(replace(good, signature=flipped))
    assert rejection(blob, release_key) == firmware.BAD_SIGNATURE


def test_an_image_for_another_model_is_refused(release_key: Ed25519PrivateKey) -> None:
    assert rejection(signed(release_key), release_key, model="MeetingBoard 65") == (
        firmware.WRONG_MODEL
    )


def test_a_downgrade_is_refused(release_key: Ed25519PrivateKey) -> None:
    blob = signed(release_key, "264.410.0.4")
    assert rejection(blob, release_key, installed="264.410.0.5") == firmware.DOWNGRADE


def test_bad_signature_wrong_model_and_downgrade_get_distinct_reasons(
    release_key: Ed25519PrivateKey,
) -> None:
    codes = [
        rejection(signed(firmware.generate_release_key()), release_key),
        rejection(signed(release_key), release_key, model="DeskVision A24"),
        rejection(signed(release_key, "1.0"), release_key),
    ]
    assert len(set(codes)) == 3


@pytest.mark.parametrize("cut", [0, 3, 10, -5])
def test_a_truncated_or_foreign_package_is_malformed(
    release_key: Ed25519PrivateKey, cut: int
) -> None:
    blob = signed(release_key)
    assert rejection(blob[:cut], release_key) == firmware.MALFORMED


def test_trailing_bytes_are_malformed(release_key: Ed25519PrivateKey) -> None:
    assert rejection(signed(release_key) + b"x", release_key) == firmware.MALFORMED


# -- keys --------------------------------------------------------------------------------------


def test_release_key_round_trips_through_pem_with_a_password(
    release_key: Ed25519PrivateKey,
) -> None:
    pem = firmware.release_key_pem(release_key, password=b"s3cret")
    assert b"ENCRYPTED" in pem
    loaded = firmware.load_release_key(pem, password=b"s3cret")
    public = firmware.load_public_key(firmware.public_key_pem(loaded))
    firmware.verify_package(
        signed(release_key), public, model=MODEL, installed_version="264.410.0.5"
    )


def test_a_region_ca_key_cannot_serve_as_the_release_key() -> None:
    with pytest.raises(Invalid) as refused:
        firmware.load_release_key(key_pem(new_private_key()))
    assert refused.value.field == "release_key"


def test_a_wrong_password_is_refused(release_key: Ed25519PrivateKey) -> None:
    pem = firmware.release_key_pem(release_key, password=b"s3cret")
    with pytest.raises(Invalid):
        firmware.load_release_key(pem, password=b"wrong")


# -- per-download encryption -------------------------------------------------------------------


def test_encryption_round_trip(release_key: Ed25519PrivateKey) -> None:
    blob = signed(release_key)
    key = firmware.new_download_key()
    sealed = firmware.encrypt_download(blob, key, context=b"download-1")
    assert IMAGE[:64] not in sealed
    assert firmware.decrypt_download(sealed, key, context=b"download-1") == blob


def test_each_download_is_sealed_differently(release_key: Ed25519PrivateKey) -> None:
    blob = signed(release_key)
    key = firmware.new_download_key()
    assert firmware.encrypt_download(blob, key) != firmware.encrypt_download(blob, key)


def test_decrypting_with_the_wrong_key_fails(release_key: Ed25519PrivateKey) -> None:
    sealed = firmware.encrypt_download(signed(release_key), firmware.new_download_key())
    with pytest.raises(FirmwareRejected) as refused:
        firmware.decrypt_download(sealed, firmware.new_download_key())
    assert refused.value.rejection == firmware.DECRYPT_FAILED


def test_decrypting_for_another_download_or_a_modified_ciphertext_fails(
    release_key: Ed25519PrivateKey,
) -> None:
    key = firmware.new_download_key()
    sealed = firmware.encrypt_download(signed(release_key), key, context=b"download-1")
    with pytest.raises(FirmwareRejected):
        firmware.decrypt_download(sealed, key, context=b"download-2")
    modified = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(FirmwareRejected):
        firmware.decrypt_download(modified, key, context=b"download-1")


def test_a_short_download_key_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        firmware.encrypt_download(b"data", b"short")
    assert refused.value.field == "key"
