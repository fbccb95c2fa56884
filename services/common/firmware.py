"""Signed and encrypted firmware images, shared by the DM service and the device agent.

An image travels as a package: a manifest (model, version, sha256, size), an Ed25519 signature and
the image bytes. The signature covers the manifest, and the manifest pins the image's digest and
size, so manifest and image are signed together. The release key that signs is an Ed25519 key of
its own, kept apart from the region CA (whose keys are P-256 and live in another directory).

For a download the service encrypts the package with AES-GCM under a fresh per-download key, which
the device receives over its mTLS session. The device decrypts, then `verify_package` refuses a bad
signature, a tampered image, a wrong model or a version downgrade, each with its own reason code.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.errors import DomainError, Invalid

# Reason codes of a refused image; the device agent reports them as-is.
MALFORMED = "malformed"
DECRYPT_FAILED = "decrypt-failed"
BAD_SIGNATURE = "bad-signature"
IMAGE_MISMATCH = "image-mismatch"
WRONG_MODEL = "wrong-model"
DOWNGRADE = "downgrade"

RELEASE_KEY_FILE = "release-key.pem"
DOWNLOAD_KEY_BYTES = 32
_NONCE_BYTES = 12
# Prefixed to the signed bytes so a release signature can never pass for any other signature.
_SIGNING_CONTEXT = b"roomtrust-firmware-manifest-v1\n"
_PACKAGE_MAGIC = b"RTFW1"


class FirmwareRejected(DomainError):
    """An image the device must not install; `code` is one of the reason codes above."""

    status = 422

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, field="image")
        self.code = code


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


# -- the release key ---------------------------------------------------------------------------


def generate_release_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def release_key_pem(key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_release_key(pem: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load a release key; any other kind of key (a region CA's P-256 key, say) is refused."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"cannot read the release key: {exc}", "release_key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise Invalid("the release key must be an Ed25519 key", "release_key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The verification key a device model carries built in."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise Invalid(f"cannot read the release public key: {exc}", "release_key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Invalid("the release public key must be an Ed25519 key", "release_key")
    return key


def load_or_create_release_key(directory: Path) -> Ed25519PrivateKey:
    """The release key in `directory`, made on first use; a region CA's directory is refused."""
    if (directory / "ca.key").exists():
        raise Invalid("keep the release key apart from the region CA's directory", "release_key")
    path = directory / RELEASE_KEY_FILE
    if path.exists():
        return load_release_key(path.read_bytes())
    key = generate_release_key()
    directory.mkdir(parents=True, exist_ok=True)
    path.write_bytes(release_key_pem(key))
    path.chmod(0o600)
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


def sign_image(key: Ed25519PrivateKey, *, model: str, version: str, image: bytes) -> SignedImage:
    parse_version(version)
    manifest = Manifest(model, version, hashlib.sha256(image).hexdigest(), len(image))
    signature = key.sign(_SIGNING_CONTEXT + manifest.to_bytes())
    return SignedImage(manifest, signature, image)


def pack(signed: SignedImage) -> bytes:
    """One blob: magic, then manifest, signature and image, each behind a 4-byte length."""
    parts = (signed.manifest.to_bytes(), signed.signature, signed.image)
    return _PACKAGE_MAGIC + b"".join(struct.pack(">I", len(part)) + part for part in parts)


def unpack(blob: bytes) -> SignedImage:
    if not blob.startswith(_PACKAGE_MAGIC):
        raise FirmwareRejected(MALFORMED, "not a firmware package")
    parts: list[bytes] = []
    offset = len(_PACKAGE_MAGIC)
    for _ in range(3):
        if offset + 4 > len(blob):
            raise FirmwareRejected(MALFORMED, "the firmware package is truncated")
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4
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
        release_key.verify(signed.signature, _SIGNING_CONTEXT + manifest.to_bytes())
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


def new_download_key() -> bytes:
    return AESGCM.generate_key(bit_length=DOWNLOAD_KEY_BYTES * 8)


def encrypt_download(
    package: bytes, key: bytes, *, context: bytes = b"", nonce: bytes | None = None
) -> bytes:
    """Nonce followed by the AES-GCM ciphertext; `context` (a download id) is authenticated."""
    if len(key) != DOWNLOAD_KEY_BYTES:
        raise Invalid(f"a download key is {DOWNLOAD_KEY_BYTES} bytes", "key")
    nonce = nonce if nonce is not None else os.urandom(_NONCE_BYTES)
    if len(nonce) != _NONCE_BYTES:
        raise Invalid(f"an AES-GCM nonce is {_NONCE_BYTES} bytes", "nonce")
    return nonce + AESGCM(key).encrypt(nonce, package, context)


def decrypt_download(data: bytes, key: bytes, *, context: bytes = b"") -> bytes:
    if len(key) != DOWNLOAD_KEY_BYTES or len(data) < _NONCE_BYTES + 16:
        raise FirmwareRejected(DECRYPT_FAILED, "the download cannot be decrypted")
    try:
        return AESGCM(key).decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], context)
    except InvalidTag:
        raise FirmwareRejected(DECRYPT_FAILED, "the download cannot be decrypted") from None
