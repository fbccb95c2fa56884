"""The DM API against a live region process: enrollment gating, mTLS sessions, revocation,
the DM-09 allowlist, region isolation and alerts."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpcore
import httpx
import pytest

from protocol.stack import Stack
from roomtrust.harness.stores import region_engine, table_counts
from services.dm.client import DeviceCredential, DmAdmin
from services.dm.domain.catalogue import MANAGED_MODELS


def test_every_managed_model_deploys_and_enrolls(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    for model in MANAGED_MODELS:
        device = make_device(model)
        dm_admin.deploy(device.mac, device.serial_number, model, dm_admin.site_id)  # type: ignore[attr-defined]
        assert device.enroll(url, ca).status_code == 201, model
        with device.client(url, ca) as http:
            assert http.post("/v1/device/heartbeat", json={}).status_code == 200
    listed = {d["model"] for d in dm_admin.devices() if d["enrolled"]}
    assert listed == set(MANAGED_MODELS)


def test_unknown_model_is_refused(dm_admin: DmAdmin) -> None:
    response = dm_admin.http.post(
        "/v1/devices",
        json={
            "mac": "02:00:00:00:00:01",
            "serial_number": "X",
            "model": "PhoneBar 9",
            "site_id": dm_admin.site_id,
        },  # type: ignore[attr-defined]
    )
    assert response.status_code == 422
    assert response.json()["field"] == "model"


def test_undeployed_enrollment_is_refused_and_stores_nothing(
    live_stack: Stack, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    engine = region_engine(live_stack, "dm", "us")
    before = table_counts(engine)
    device = make_device()
    response = device.enroll(url, ca)
    assert response.status_code == 403
    assert response.json()["reason"]
    assert not device.cert_file.exists()
    assert table_counts(engine) == before
    engine.dispose()


def test_wrong_serial_is_refused(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    device = make_device()
    dm_admin.deploy(device.mac, "SN-OTHER", device.model, dm_admin.site_id)  # type: ignore[attr-defined]
    assert device.enroll(url, ca).status_code == 403


def test_second_enrollment_is_refused(live_stack: Stack, enrolled_device: DeviceCredential) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    assert enrolled_device.enroll(url, ca).status_code == 403


def test_telemetry_with_unknown_field_is_refused_and_stores_nothing(
    live_stack: Stack, enrolled_device: DeviceCredential
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    engine = region_engine(live_stack, "dm", "us")
    before = table_counts(engine)
    with enrolled_device.client(url, ca) as http:
        response = http.post(
            "/v1/device/telemetry",
            json={"firmware_version": "1.2.3", "meeting_transcript": "hello"},
        )
    assert response.status_code == 422
    assert response.json()["field"] == "meeting_transcript"
    assert table_counts(engine) == before
    engine.dispose()


def test_telemetry_is_stored_and_updates_the_device(
    live_stack: Stack, dm_admin: DmAdmin, enrolled_device: DeviceCredential
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    engine = region_engine(live_stack, "dm", "us")
    before = table_counts(engine)["telemetry"]
    with enrolled_device.client(url, ca) as http:
        response = http.post(
            "/v1/device/telemetry",
            json={"firmware_version": "2.0.1", "network_type": "wifi", "ipv4_address": "10.1.2.3"},
        )
    assert response.status_code == 200
    assert table_counts(engine)["telemetry"] == before + 1
    mine = next(d for d in dm_admin.devices() if d["device_id"] == enrolled_device.device_id)
    assert mine["firmware_version"] == "2.0.1"
    assert mine["status"] == "online"
    engine.dispose()


def test_device_routes_need_a_client_certificate(live_stack: Stack) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with httpx.Client(base_url=url, verify=str(ca)) as http:
        response = http.post("/v1/device/telemetry", json={"status": "online"})
    assert response.status_code == 401


def test_revoked_device_is_refused_on_its_next_request(
    live_stack: Stack, dm_admin: DmAdmin, enrolled_device: DeviceCredential
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with enrolled_device.client(url, ca) as http:
        assert http.post("/v1/device/heartbeat", json={}).status_code == 200
        assert enrolled_device.device_id is not None
        dm_admin.undeploy(enrolled_device.device_id)
        # same keep-alive connection, same certificate: refused on the very next request
        response = http.post("/v1/device/heartbeat", json={})
    assert response.status_code == 403
    assert "revoked" in response.json()["reason"]


def test_certificate_of_region_eu_is_refused_by_region_us(
    live_stack: Stack, make_device: Callable[..., DeviceCredential]
) -> None:
    eu = live_stack.endpoint("dm", "eu")
    eu_url, eu_ca = eu.url, eu.ca_file
    us = live_stack.endpoint("dm", "us")
    us_url, us_ca = us.url, us.ca_file
    with DmAdmin(eu_url, eu_ca) as eu_admin:
        eu_admin.register("EU Corp", "eu-admin@example.com", "correct horse battery")
        eu_admin.login("eu-admin@example.com", "correct horse battery")
        site = eu_admin.create_site("Paris", "Europe/Paris")
        device = make_device()
        eu_admin.deploy(device.mac, device.serial_number, device.model, site)
    assert device.enroll(eu_url, eu_ca).status_code == 201
    with device.client(eu_url, eu_ca) as http:
        assert http.post("/v1/device/heartbeat", json={}).status_code == 200
    with (
        # the refusal is a failed handshake or a connection closed without an answer; on a
        # loaded machine the latter can surface as httpcore's own error
        pytest.raises(
            (
                ssl.SSLError,
                httpx.ConnectError,
                httpx.ReadError,
                httpx.RemoteProtocolError,
                httpcore.RemoteProtocolError,
            )
        ),
        device.client(us_url, us_ca) as http,
    ):
        response = http.post("/v1/device/heartbeat", json={})
        pytest.fail(f"region us answered a region-eu certificate with {response.status_code}")


def test_health_fault_raises_an_alert_that_moves_through_its_states(
    live_stack: Stack, dm_admin: DmAdmin, enrolled_device: DeviceCredential
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with enrolled_device.client(url, ca) as http:
        response = http.post("/v1/device/health", json={"component": "camera", "state": "fault"})
    assert response.status_code == 200
    alert = next(
        a for a in dm_admin.alerts("active") if a["device_id"] == enrolled_device.device_id
    )
    assert (alert["rule"], alert["component"], alert["severity"]) == ("fault", "camera", "major")
    acked = dm_admin.http.post(f"/v1/alerts/{alert['alert_id']}/acknowledge").json()
    assert acked["state"] == "acknowledged"
    cleared = dm_admin.http.post(f"/v1/alerts/{alert['alert_id']}/clear").json()
    assert cleared["state"] == "cleared"
    again = dm_admin.http.post(f"/v1/alerts/{alert['alert_id']}/acknowledge")
    assert again.status_code == 409
    actions = {entry["action"] for entry in dm_admin.oplog()}
    assert {"device.deploy", "alert.acknowledged", "alert.cleared"} <= actions


def test_admin_routes_need_a_token(live_stack: Stack) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with httpx.Client(base_url=url, verify=str(ca)) as http:
        assert http.get("/v1/devices").status_code == 401
        assert http.get("/v1/devices", headers={"authorization": "Bearer nope"}).status_code == 401


def test_openapi_is_served(live_stack: Stack) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    with httpx.Client(base_url=url, verify=str(ca)) as http:
        spec = http.get("/openapi.json").json()
    assert "/v1/enroll" in spec["paths"]
