"""`roomtrust demo`: start (or reuse) the local stack, run a small scenario end to end, and write a
summary to reports/out/.

Per DM region: an enterprise and a site, one device of every managed model deployed and enrolled
over the region's CA, a telemetry report from each over mutual TLS, and one device that nobody
deployed being refused.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from protocol.stack import stack_file
from roomtrust.stack import launcher
from services.dm.client import DeviceCredential, DmAdmin
from services.dm.domain.catalogue import MANAGED_MODELS

PASSWORD = "demo password 2026"


def _mac() -> str:
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def run_dm_region(region: str, url: str, ca: Path, keys: Path) -> dict[str, Any]:
    email = f"demo-{region}-{secrets.token_hex(3)}@example.com"
    with DmAdmin(url, ca) as admin:
        admin.register(f"Demo {region.upper()}", email, PASSWORD)
        admin.login(email, PASSWORD)
        site = admin.create_site(f"{region}-hq", "UTC")
        reports = 0
        for model in MANAGED_MODELS:
            device = DeviceCredential(_mac(), f"SN{secrets.token_hex(4)}", model, keys)
            admin.deploy(device.mac, device.serial_number, model, site)
            if device.enroll(url, ca).status_code != 201:
                raise RuntimeError(f"{region}: {model} failed to enroll")
            with device.client(url, ca) as http:
                response = http.post(
                    "/v1/device/telemetry",
                    json={
                        "status": "online",
                        "firmware_version": "1.0.0",
                        "network_type": "ethernet",
                    },
                )
                reports += response.status_code == 200
        stranger = DeviceCredential(_mac(), "SN-UNKNOWN", "MeetingBar A10", keys)
        refused = stranger.enroll(url, ca).status_code
        devices = admin.devices()
    return {
        "region": region,
        "devices_enrolled": sum(d["enrolled"] for d in devices),
        "models": sorted({d["model"] for d in devices}),
        "telemetry_accepted": reports,
        "undeployed_enrollment_status": refused,
    }


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["# roomtrust demo", ""]
    for row in summary["dm"]:
        lines.append(
            f"- DM {row['region']}: {row['devices_enrolled']} devices enrolled "
            f"({len(row['models'])} models), {row['telemetry_accepted']} telemetry reports "
            f"accepted, undeployed device refused with {row['undeployed_enrollment_status']}"
        )
    path = out / "demo-summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_demo(home: Path, out: Path) -> dict[str, Any]:
    stack = launcher.start(home)
    keys = home / "demo-keys"
    summary: dict[str, Any] = {"stack": str(stack_file(home.resolve())), "dm": []}
    for region in stack.regions("dm"):
        dm = stack.endpoint("dm", region)
        summary["dm"].append(run_dm_region(region, dm.url, dm.ca_file, keys))
    summary["summary_file"] = str(write_summary(out, summary))
    return summary
