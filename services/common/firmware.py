"""Firmware signing and download encryption: the service's half of the firmware package format.

The format itself (manifest, package layout, verification, decryption, versions) is the wire
contract's, `protocol.firmware`, which the device agent reads too; it is re-exported here. This
module adds what only the service does: the Ed25519 release key (kept apart from the region CA,
whose keys are P-256 and live in another directory), signing an image and encrypting a download
under a fresh per-download key, which the device receives over its mTLS session.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.errors import Invalid
from protocol.firmware import (
    BAD_SIGNATURE,
    DECRYPT_FAILED,
    DOWNGRADE,
    DOWNLOAD_KEY_BYTES,
    IMAGE_MISMATCH,
    MALFORMED,
    NONCE_BYTES,
    WRONG_MODEL,
    FirmwareRejected,
    Manifest,
    Rejection,
    SignedImage,
    compare_versions,
    decrypt_download,
    load_public_key,
    pack,
    parse_version,
    unpack,
    verify_image,
    verify_package,
)

__all__ = [
    "BAD_SIGNATURE",
    "DECRYPT_FAILED",
    "DOWNGRADE",
    "DOWNLOAD_KEY_BYTES",
    "IMAGE_MISMATCH",
    "MALFORMED",
    "RELEASE_KEY_FILE",
    "WRONG_MODEL",
    "FirmwareRejected",
    "Manifest",
    "Rejection",
    "SignedImage",
    "compare_versions",
    "decrypt_download",
    "encrypt_download",
    "generate_release_key",
    "load_or_create_release_key",
    "load_public_key",
    "load_release_key",
    "new_download_key",
    "pack",
    "parse_version",
    "public_key_pem",
    "release_key_pem",
    "sign_image",
    "unpack",
    "verify_image",
    "verify_package",
]

RELEASE_KEY_FILE = "release-key.pem"


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


# -- signing -----------------------------------------------------------------------------------


def sign_image(key: Ed25519PrivateKey, *, model: str, version: str, image: bytes) -> SignedImage:
    parse_version(version)
    manifest = Manifest.of(model, version, image)
    return SignedImage(manifest, key.sign(manifest.signed_bytes()), image)


# -- per-download encryption -------------------------------------------------------------------


def new_download_key() -> bytes:
    return AESGCM.generate_key(bit_length=DOWNLOAD_KEY_BYTES * 8)


def encrypt_download(
    package: bytes, key: bytes, *, context: bytes = b"", nonce: bytes | None = None
) -> bytes:
    """Nonce followed by the AES-GCM ciphertext; `context` (a download id) is authenticated."""
    if len(key) != DOWNLOAD_KEY_BYTES:
        raise Invalid(f"a download key is {DOWNLOAD_KEY_BYTES} bytes", "key")
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise Invalid(f"an AES-GCM nonce is {NONCE_BYTES} bytes", "nonce")
    return nonce + AESGCM(key).encrypt(nonce, package, context)
