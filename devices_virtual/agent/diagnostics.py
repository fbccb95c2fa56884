"""The remote-diagnosis bundle a device uploads (DM-05): only the DM-09 diagnosis fields (the
command it answers, the device ID, MAC and IP address) and its own log files."""

from __future__ import annotations

from typing import Any, Final

from protocol.fields import DIAGNOSTICS_UPLOAD_FIELDS as DIAGNOSIS_FIELDS

LOG_FILE: Final = "agent.log"
UPLOAD_PATH: Final = "/v1/device/diagnostics"


def diagnostics_bundle(
    *, command_id: Any, device_id: str, mac: str, ip_address: str, log_lines: list[str]
) -> dict[str, Any]:
    bundle = {
        "command_id": command_id,
        "device_id": device_id,
        "mac": mac,
        "ip_address": ip_address,
        "logs": {LOG_FILE: "".join(f"{line}\n" for line in log_lines)},
    }
    if set(bundle) != set(DIAGNOSIS_FIELDS):  # a programming error, never data from outside
        raise AssertionError(f"a bundle holds exactly {DIAGNOSIS_FIELDS}")
    return bundle
