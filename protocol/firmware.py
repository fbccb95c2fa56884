"""The firmware package format, as the DM service writes it and a device reads it.

An image travels as a package: a manifest (model, version, sha256, size), an Ed25519 signature and
the image bytes. The signature covers `SIGNING_CONTEXT` + the manifest, and the manifest pins the
image's digest and size, so manifest and image are signed together.

    package  = PACKAGE_MAGIC | len(manifest) manifest | len(signature) signature | len(image) image
               (each length a 4-byte big-endian unsigned integer; nothing may follow)
    manifest = canonical JSON {"model", "sha256", "size", "version"} (sorted keys, no spaces)
    download = nonce (12 bytes) | AES-256-GCM(package), the download id as associated data

The device decrypts with the per-download key it received over its mTLS session, then
`verify_package` refuses a bad signature, a tampered image, a wrong model or a version downgrade,
each with its own `Rejection` code, which the device reports as-is. Making keys, signing and
encrypting are the service's (`services.common.firmware`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.errors import ErrorCode, Invalid, WireError


class Rejection(StrEnum):
    """Why a device refuses an image; reported in its command result."""

    MALFORMED = "malformed"
    DECRYPT_FAILED = "decrypt-failed"
    BAD_SIGNATURE = "bad-signature"
    IMAGE_MISMATCH = "image-mismatch"
    WRONG_MODEL = "wrong-model"
    DOWNGRADE = "downgrade"


MALFORMED = Rejection.MALFORMED
DECRYPT_FAILED = Rejection.DECRYPT_FAILED
BAD_SIGNATURE = Rejection.BAD_SIGNATURE
IMAGE_MISMATCH = Rejection.IMAGE_MISMATCH
WRONG_MODEL = Rejection.WRONG_MODEL
DOWNGRADE = Rejection.DOWNGRADE

DOWNLOAD_KEY_BYTES = 32
NONCE_BYTES = 12
# Prefixed to the signed bytes so a release signature can never pass for any other signature.
SIGNING_CONTEXT = b"roomtrust-firmware-manifest-v1\n"
PACKAGE_MAGIC = b"RTFW1"
_LENGTH = struct.Struct(">I")


class FirmwareRejected(WireError):
    """An image the device must not install; `rejection` says why."""

    code = ErrorCode.FIRMWARE_REJECTED
    status = 422

    def __init__(self, rejection: Rejection, reason: str) -> None:
        super().__init__(reason, field="image")
        self.rejection = rejection


# -- versions ----------------------------------------------------------------------------------


def parse_version(version: str) -> tuple[int, ...]:
    """`"262.410.0.5"` -> `(262, 410, 0, 5)`; trailing zeros do not count (`1.2 == 1.2.0`)."""
    parts = version.strip().split(".")
    if not version.strip() or not all(part.isdigit() for part in parts):
        raise Invalid(f"version {version!r} is not dotted numbers (like 262.410.0.5)", "version")
    numbers = [int(part) for part in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as dotted version `a` is older than, equal to or newer than `b`."""
    left, right = parse_version(a), parse_version(b)
    return (left > right) - (left < right)


# -- the release key's public half -------------------------------------------------------------


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The verification key a device model carries built in."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise Invalid(f"cannot read the release public key: {exc}", "release_key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Invalid("the release public key must be an Ed25519 key", "release_key")
    return key


# -- manifest and signed package ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    model: str
    version: str
    sha256: str
    size: int

    def to_bytes(self) -> bytes:
        fields = {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def signed_bytes(self) -> bytes:
        """What the release key signs."""
        return SIGNING_CONTEXT + self.to_bytes()

    @classmethod
    def of(cls, model: str, version: str, image: bytes) -> Manifest:
        return cls(model, version, hashlib.sha256(image).hexdigest(), len(image))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            fields = json.loads(raw)
            manifest = cls(
                model=str(fields["model"]),
                version=str(fields["version"]),
                sha256=str(fields["sha256"]),
                size=int(fields["size"]),
            )
        except (ValueError, KeyError, TypeError):
            raise FirmwareRejected(MALFORMED, "the image manifest cannot be read") from None
        return manifest


@dataclass(frozen=True, slots=True)
class SignedImage:
    manifest: Manifest
    signature: bytes
    image: bytes


def pack(signed: SignedImage) -> bytes:
    """One blob: magic, then manifest, signature and image, each behind a 4-byte length."""
    parts = (signed.manifest.to_bytes(), signed.signature, signed.image)
    return PACKAGE_MAGIC + b"".join(_LENGTH.pack(len(part)) + part for part in parts)


def unpack(blob: bytes) -> SignedImage:
    if not blob.startswith(PACKAGE_MAGIC):
        raise FirmwareRejected(MALFORMED, "not a firmware package")
    parts: list[bytes] = []
    offset = len(PACKAGE_MAGIC)
    for _ in range(3):
        if offset + _LENGTH.size > len(blob):
            raise FirmwareRejected(MALFORMED, "the firmware package is truncated")
        (length,) = _LENGTH.unpack_from(blob, offset)
        offset += _LENGTH.size
        if offset + length > len(blob):
            raise FirmwareRejected(MALFORMED, "the firmware package is truncated")
        parts.append(blob[offset : offset + length])
        offset += length
    if offset != len(blob):
        raise FirmwareRejected(MALFORMED, "the firmware package has trailing bytes")
    return SignedImage(Manifest.from_bytes(parts[0]), parts[1], parts[2])


def verify_image(
    signed: SignedImage,
    release_key: Ed25519PublicKey,
    *,
    model: str,
    installed_version: str,
) -> Manifest:
    """The manifest of an image this device may install; otherwise FirmwareRejected.

    The signature is checked first: nothing in an unsigned manifest can be believed.
    """
    manifest = signed.manifest
    try:
        release_key.verify(signed.signature, manifest.signed_bytes())
    except InvalidSignature:
        raise FirmwareRejected(
            BAD_SIGNATURE, "the image is not signed by this model's release key"
        ) from None
    if len(signed.image) != manifest.size or (
        hashlib.sha256(signed.image).hexdigest() != manifest.sha256
    ):
        raise FirmwareRejected(IMAGE_MISMATCH, "the image does not match its signed manifest")
    if manifest.model != model:
        raise FirmwareRejected(
            WRONG_MODEL, f"the image is for {manifest.model!r}, this device is {model!r}"
        )
    try:
        older = compare_versions(manifest.version, installed_version) < 0
    except Invalid:
        raise FirmwareRejected(MALFORMED, "the image or installed version is unreadable") from None
    if older:
        raise FirmwareRejected(
            DOWNGRADE,
            f"version {manifest.version} is older than the installed {installed_version}",
        )
    return manifest


def verify_package(
    blob: bytes, release_key: Ed25519PublicKey, *, model: str, installed_version: str
) -> SignedImage:
    signed = unpack(blob)
    verify_image(signed, release_key, model=model, installed_version=installed_version)
    return signed


# -- per-download encryption -------------------------------------------------------------------


def decrypt_download(data: bytes, key: bytes, *, context: bytes = b"") -> bytes:
    """The package inside a download (nonce, then AES-GCM ciphertext; `context` authenticated)."""
    if len(key) != DOWNLOAD_KEY_BYTES or len(data) < NONCE_BYTES + 16:
        raise FirmwareRejected(DECRYPT_FAILED, "the download cannot be decrypted")
    try:
        return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], context)
    except InvalidTag:
        raise FirmwareRejected(DECRYPT_FAILED, "the download cannot be decrypted") from None
