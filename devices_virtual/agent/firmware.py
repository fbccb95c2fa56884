"""A virtual device's firmware: its two slots (A/B), the update in progress, and virtual images.

A virtual image is bytes like any other, so it is signed, encrypted and verified like any other.
Its first line says it is virtual, and a JSON line after it describes how the image behaves once
booted: `self_test` "pass" or "fail". A device that boots an image whose self-test fails rolls
back by itself (the post-boot health check). An image without that header passes its self-test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VIRTUAL_IMAGE_MAGIC = b"roomtrust-virtual-firmware\n"
SLOT_NAMES = ("a", "b")

# Reasons a device gives when it does not end up on the new version (besides the verification
# codes of protocol.firmware.Rejection: bad-signature, wrong-model, downgrade, ...).
DOWNLOAD_FAILED = "download-failed"
INSTALL_FAILED = "install-failed"
HEALTH_CHECK_FAILED = "health-check-failed"
NO_RELEASE_KEY = "no-release-key"
BAD_COMMAND = "bad-command"
BUSY = "busy"
NO_SLOT = "no-slot"


def virtual_image(model: str, version: str, *, self_test: str = "pass", size: int = 4096) -> bytes:
    """The bytes of a virtual firmware image of `size` bytes (at least the header)."""
    if self_test not in ("pass", "fail"):
        raise ValueError("self_test is pass or fail")
    header = (
        VIRTUAL_IMAGE_MAGIC
        + json.dumps(
            {"model": model, "version": version, "self_test": self_test}, sort_keys=True
        ).encode()
    )
    body = header + b"\n"
    return body + bytes(max(0, size - len(body)))


def image_self_test(image: bytes) -> tuple[bool, str]:
    """How the image behaves once booted: (passes its self-test, what failed)."""
    if not image.startswith(VIRTUAL_IMAGE_MAGIC):
        return True, ""
    line = image[len(VIRTUAL_IMAGE_MAGIC) :].split(b"\n", 1)[0]
    try:
        spec: Any = json.loads(line)
    except ValueError:
        return False, "the image's self-description cannot be read"
    if not isinstance(spec, dict) or spec.get("self_test") != "pass":
        return False, "the image's self-test failed after boot"
    return True, ""


@dataclass(slots=True)
class Update:
    """One firmware command being carried out."""

    command_id: Any
    path: str  # of the download on the DM server; its last part is the download id
    key: bytes  # the per-download AES-GCM key from the command
    stage: str = "downloading"  # downloading -> installing -> rebooting -> trial
    request_id: int | None = None
    version: str = ""
    self_test_ok: bool = True
    self_test_detail: str = ""

    @property
    def download_id(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(slots=True)
class FirmwareState:
    """The device's flash: two slots, the active one, and what it must still report."""

    slots: list[str | None]
    active: int = 0
    update: Update | None = None
    boot_into: int | None = None  # the slot the next power-up boots once, on trial
    on_trial: bool = False  # booted into a new slot that has not passed its health check yet
    reports: dict[Any, dict[str, Any]] = field(default_factory=dict)  # command -> result
    fault_open: bool = False  # a firmware_update fault was reported and not yet cleared

    @property
    def inactive(self) -> int:
        return 1 - self.active

    def remember(self, command_id: Any, result: dict[str, Any], keep: int = 16) -> None:
        """Keep the result of a command, to acknowledge it again when it is delivered again."""
        self.reports[command_id] = result
        while len(self.reports) > keep:
            del self.reports[next(iter(self.reports))]
