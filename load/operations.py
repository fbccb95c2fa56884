"""The report of a load run's fleet operations, read from the DM service after the run.

The `operator` user pushes a configuration profile and asks for a renewal wave (load.scenario,
`operations`); the devices' agents carry them out. What counts here is what the service recorded of
them, never what the Locust users think they did:

- the push: the profile's config commands and the devices' acknowledgements of them, applied or
  refused (`GET /v1/config/profiles/{id}/status`);
- the renewal wave: the `renew_certificate` requests, the devices' acknowledgements, the
  certificates the region issued, and the renewed certificates put in use (their first use revokes
  the old one), from the operation log (`GET /v1/oplog?action=...`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.dm.client import DmAdmin

OPLOG_PAGE = 1000  # the service's largest page: counts at this size are "at least"
RENEWAL_ACTIONS = {
    "requested": "device.renew_certificate",
    "acknowledged": "device.renew_certificate_done",
    "issued": "device.certificate_renew",
    "revoked": "device.certificate_revoke",
}


def _renewals(admin: DmAdmin) -> dict[str, Any]:
    entries = {name: admin.oplog(OPLOG_PAGE, action) for name, action in RENEWAL_ACTIONS.items()}
    acks = entries["acknowledged"]
    renewing = [e for e in acks if e["detail"].get("result", {}).get("renewing") is True]
    in_use = [
        e for e in entries["revoked"] if e["detail"].get("reason") == "replaced by its renewal"
    ]
    return {
        "requested": len(entries["requested"]),
        "acknowledged": len(renewing),
        "refused": len(acks) - len(renewing),
        "certificates_issued": len(entries["issued"]),
        "devices_renewed": len({e["target"] for e in entries["issued"]}),
        "renewed_in_use": len(in_use),
        "capped": any(len(found) >= OPLOG_PAGE for found in entries.values()),
    }


def fleet_report(
    url: str, ca_file: Path, email: str, password: str, profile_id: int
) -> dict[str, Any]:
    """One fleet's DM enterprise: its push status and its renewal wave, as the service has them."""
    with DmAdmin(url, ca_file) as admin:
        admin.login(email, password)
        push = admin.push_status(profile_id)
        return {"config_push": push, "renewal_wave": _renewals(admin)}


def operations_report(
    provision: dict[str, Any], ca_dir: Path, schedule: dict[str, Any]
) -> dict[str, Any]:
    """Every fleet's report, and whether each scheduled operation reached every device: every
    targeted device acknowledged the push as applied; every device asked renewed and uses the new
    certificate."""
    fleets: dict[str, Any] = {}
    for name, target in provision["targets"].items():
        dm = target.get("dm")
        if dm is None:
            continue
        ca_file = ca_dir / f"{name}-dm-ca.pem"
        ca_file.write_text(dm["ca_pem"])
        admin = dm["admin"]
        fleets[name] = fleet_report(
            dm["url"], ca_file, admin["email"], admin["password"], int(dm["profile_id"])
        )
    problems: list[str] = []
    for name, fleet in fleets.items():
        push, wave = fleet["config_push"], fleet["renewal_wave"]
        pushed = schedule.get("push_config_at_s") is not None
        if pushed and (not push["devices"] or push["applied"] < push["devices"]):
            problems.append(
                f"{name}: {push['applied']} of {push['devices']} devices applied the push"
            )
        asked = wave["requested"]
        renewing = schedule.get("renew_at_s") is not None
        if renewing and (not asked or wave["renewed_in_use"] < asked):
            problems.append(
                f"{name}: {wave['renewed_in_use']} of {asked} devices renewed their certificate"
            )
    return {
        "schedule": schedule,
        "fleets": fleets,
        "totals": {
            "push_devices": sum(f["config_push"]["devices"] for f in fleets.values()),
            "push_acknowledged": sum(f["config_push"]["acknowledged"] for f in fleets.values()),
            "push_applied": sum(f["config_push"]["applied"] for f in fleets.values()),
            "push_refused": sum(f["config_push"]["refused"] for f in fleets.values()),
            "renew_requested": sum(f["renewal_wave"]["requested"] for f in fleets.values()),
            "renew_acknowledged": sum(f["renewal_wave"]["acknowledged"] for f in fleets.values()),
            "certificates_renewed": sum(
                f["renewal_wave"]["devices_renewed"] for f in fleets.values()
            ),
            "renewed_in_use": sum(f["renewal_wave"]["renewed_in_use"] for f in fleets.values()),
        },
        "complete": not problems,
        "problems": problems,
    }


def format_report(report: dict[str, Any]) -> list[str]:
    t = report["totals"]
    lines = [
        f"config push: {t['push_devices']} devices targeted, {t['push_acknowledged']} acknowledged "
        f"({t['push_applied']} applied, {t['push_refused']} refused)",
        f"renewal wave: {t['renew_requested']} devices asked, {t['renew_acknowledged']} "
        f"acknowledged, {t['certificates_renewed']} certificates renewed, "
        f"{t['renewed_in_use']} in use",
    ]
    lines += [f"OPERATION INCOMPLETE: {p}" for p in report["problems"]]
    return lines
