"""The DM side of a device identity's lifecycle, over HTTP against `manual_region` (certificates
last 31 days here): what a renewal needs and when the old certificate stops working, re-deploying,
and the refusals of the remote-action endpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.common.ca import key_pem, make_csr, new_private_key
from services.common.tls import client_context
from services.dm.client import DeviceCredential, DmAdmin
from tests.dm.conftest import ManualRegion

PASSWORD = "correct horse battery"


@pytest.fixture
def manual_settings() -> dict[str, object]:
    return {"device_certificate_days": 31}


def admin_of(region: ManualRegion, name: str) -> tuple[DmAdmin, str]:
    admin = DmAdmin(region.url, region.ca_file)
    email = f"{name.lower()}@example.com"
    admin.register(name, email, PASSWORD)
    admin.login(email, PASSWORD)
    return admin, admin.create_site("HQ", "UTC")


def enrolled(region: ManualRegion, admin: DmAdmin, site: str, device: DeviceCredential) -> str:
    device_id = admin.deploy(device.mac, device.serial_number, device.model, site)
    response = device.enroll(region.url, region.ca_file)
    assert response.status_code == 201, response.text
    return device_id


def post(region: ManualRegion, cert: Path, key: Path, path: str, body: object) -> httpx.Response:
    ctx = client_context(region.ca_file, cert, key)
    with httpx.Client(base_url=region.url, verify=ctx, timeout=10) as http:
        return http.post(path, json=body)


def new_key_csr(
    device: DeviceCredential, directory: Path, mac: str | None = None
) -> tuple[Path, str]:
    key = new_private_key()
    key_file = directory / "new.key"
    key_file.write_bytes(key_pem(key))
    return key_file, make_csr(key, mac or device.mac, device.serial_number).decode()


def test_a_certificate_lasts_the_configured_lifetime(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential]
) -> None:
    admin, site = admin_of(manual_region, "Life")
    device = make_device()
    enrolled(manual_region, admin, site, device)
    cert = x509.load_pem_x509_certificate(device.cert_file.read_bytes())
    lifetime = cert.not_valid_after_utc - manual_region.clock.now()
    assert dt.timedelta(days=31) - lifetime < dt.timedelta(minutes=1)


def test_the_old_certificate_works_until_the_renewed_one_is_used_then_is_refused(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential], tmp_path: Path
) -> None:
    admin, site = admin_of(manual_region, "Renew")
    device = make_device()
    device_id = enrolled(manual_region, admin, site, device)
    old = (device.cert_file, device.key_file)
    key_file, csr = new_key_csr(device, tmp_path)
    renewed = post(manual_region, *old, "/v1/device/certificate", {"csr_pem": csr})
    assert renewed.status_code == 201, renewed.text
    assert set(renewed.json()) == {"certificate_pem", "ca_pem", "not_after"}
    new_cert = tmp_path / "new.pem"
    new_cert.write_text(renewed.json()["certificate_pem"])

    beat = {"status": "online"}
    assert post(manual_region, *old, "/v1/device/heartbeat", beat).status_code == 200
    assert post(manual_region, new_cert, key_file, "/v1/device/heartbeat", beat).status_code == 200
    refused = post(manual_region, *old, "/v1/device/heartbeat", beat)
    assert refused.status_code == 403, refused.text
    assert post(manual_region, new_cert, key_file, "/v1/device/heartbeat", beat).status_code == 200
    actions = [e["action"] for e in admin.oplog() if e["target"] == device_id]
    assert actions[:2] == ["device.certificate_revoke", "device.certificate_renew"]


def test_a_renewal_needs_a_new_key_for_this_device_and_a_deployed_device(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential], tmp_path: Path
) -> None:
    admin, site = admin_of(manual_region, "Refuse")
    device = make_device()
    device_id = enrolled(manual_region, admin, site, device)
    current = (device.cert_file, device.key_file)
    loaded = serialization.load_pem_private_key(device.key_file.read_bytes(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    same = make_csr(loaded, device.mac, device.serial_number).decode()  # the current key
    answer = post(manual_region, *current, "/v1/device/certificate", {"csr_pem": same})
    assert answer.status_code == 422 and answer.json()["field"] == "csr_pem"
    assert "new key" in answer.json()["reason"]

    _key, other = new_key_csr(device, tmp_path, mac="02:00:00:00:00:99")
    answer = post(manual_region, *current, "/v1/device/certificate", {"csr_pem": other})
    assert answer.status_code == 422 and answer.json()["field"] == "csr_pem"

    admin.undeploy(device_id)
    _key, fresh = new_key_csr(device, tmp_path)
    answer = post(manual_region, *current, "/v1/device/certificate", {"csr_pem": fresh})
    assert answer.status_code == 403, answer.text


def test_redeploying_is_for_an_undeployed_device_of_the_same_enterprise_only(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential]
) -> None:
    admin, site = admin_of(manual_region, "Owner")
    other, other_site = admin_of(manual_region, "Stranger")
    device = make_device()
    device_id = enrolled(manual_region, admin, site, device)
    again = admin.http.post(
        "/v1/devices",
        json={
            "mac": device.mac,
            "serial_number": device.serial_number,
            "model": device.model,
            "site_id": site,
        },
    )
    assert again.status_code == 409 and again.json()["field"] == "mac"  # still deployed
    admin.undeploy(device_id)
    stolen = other.http.post(
        "/v1/devices",
        json={
            "mac": device.mac,
            "serial_number": device.serial_number,
            "model": device.model,
            "site_id": other_site,
        },
    )
    assert stolen.status_code == 409 and "another enterprise" in stolen.json()["reason"]
    assert admin.deploy(device.mac, device.serial_number, device.model, site) == device_id
    assert device.enroll(manual_region.url, manual_region.ca_file).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "shutdown"}, "action"),
        ({"action": "firmware"}, "action"),
        ({"action": "log_level"}, "level"),
        ({"action": "log_level", "level": "loud"}, "level"),
        ({"action": "reboot", "level": "debug"}, "level"),
        ({"action": "reboot", "device_ids": ["x"]}, "device_ids"),
    ],
)
def test_a_bad_remote_action_is_refused_naming_the_field(
    manual_region: ManualRegion,
    make_device: Callable[..., DeviceCredential],
    body: dict[str, object],
    field: str,
) -> None:
    admin, site = admin_of(manual_region, "Actions")
    device_id = enrolled(manual_region, admin, site, make_device())
    answer = admin.http.post(f"/v1/devices/{device_id}/actions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_bulk_actions_reach_the_named_or_targeted_devices_of_this_enterprise_only(
    manual_region: ManualRegion, make_device: Callable[..., DeviceCredential]
) -> None:
    admin, site = admin_of(manual_region, "Bulk")
    other, other_site = admin_of(manual_region, "Elsewhere")
    ids = [enrolled(manual_region, admin, site, make_device()) for _ in range(3)]
    foreign = enrolled(manual_region, other, other_site, make_device())

    by_target = admin.bulk_action("log_level", level="debug", target={"site_id": site})
    assert by_target["devices"] == 3 and set(by_target["commands"]) == set(ids)
    by_ids = admin.bulk_action("reboot", device_ids=ids[:2])
    assert set(by_ids["commands"]) == set(ids[:2])
    answer = admin.http.post(
        "/v1/devices/actions", json={"action": "reboot", "device_ids": [ids[0], foreign]}
    )
    assert answer.status_code == 404 and answer.json()["field"] == "device_ids"
    both = {"action": "reboot", "device_ids": ids, "target": {"site_id": site}}
    assert admin.http.post("/v1/devices/actions", json=both).status_code == 422
    logged = [e for e in admin.oplog() if e["action"] == "device.reboot"]
    assert {e["target"] for e in logged} == set(ids[:2])
    assert not [e for e in other.oplog() if e["action"].startswith("device.reboot")]
