"""The DM API's identities (`services/dm/api/deps.py`) and its command channel, in-process: the
device identity is the certificate in the ASGI TLS extension (never a header), the administrator's
token is checked only after the request's own checks, and a revoked device's channel closes with
4003 while a bad message only gets an `error` answer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from protocol.dm_channel import CloseCode
from services.common.ca import RegionCA
from services.common.runtime import open_region
from services.dm.api.app import build_app
from services.dm.client import DeviceCredential
from services.dm.main import MIGRATIONS


@dataclass
class Region:
    client: TestClient
    admin: dict[str, str]  # the Authorization header of a logged-in administrator
    site_id: str
    tls: dict[str, str | None]  # the client certificate the fake TLS layer presents
    home: Path

    def device(self, n: int) -> tuple[DeviceCredential, str]:
        """A deployed and enrolled device, with its certificate."""
        device = DeviceCredential(
            mac=f"02:00:00:00:01:{n:02x}",
            serial_number=f"SN{n}",
            model="MeetingBar A30",
            directory=self.home / "devices",
        )
        body = {
            "mac": device.mac,
            "serial_number": device.serial_number,
            "model": device.model,
            "site_id": self.site_id,
        }
        assert self.client.post("/v1/devices", json=body, headers=self.admin).status_code == 201
        enrolled = self.client.post(
            "/v1/enroll", json={"model": device.model, "csr_pem": device.csr_pem()}
        )
        assert enrolled.status_code == 201
        device.device_id = enrolled.json()["device_id"]
        return device, enrolled.json()["certificate_pem"]


@pytest.fixture
def region(tmp_path: Path, schema_prefix: str) -> Iterator[Region]:
    runtime = open_region("dm", f"r{secrets.token_hex(3)}", tmp_path, MIGRATIONS)
    app = build_app(runtime)
    tls: dict[str, str | None] = {"cert": None}

    async def with_tls(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """What `asgi_tls` does on a real connection: the verified peer certificate, if any."""
        if tls["cert"] is not None:
            scope["extensions"] = {"tls": {"client_cert_chain": [tls["cert"]]}}
        await app(scope, receive, send)

    with TestClient(with_tls) as client:
        account = {"email": "a@example.com", "password": "correct horse battery"}
        body = {"name": "E", "admin": account | {"first_name": "A", "last_name": "B"}}
        assert client.post("/v1/enterprises", json=body).status_code == 201
        token = client.post("/v1/auth/login", json=account).json()["token"]
        admin = {"authorization": f"Bearer {token}"}
        site = client.post("/v1/sites", json={"name": "HQ", "time_zone": "UTC"}, headers=admin)
        yield Region(client, admin, site.json()["site_id"], tls, tmp_path)
    runtime.engine.dispose()


def test_the_device_identity_is_the_certificate_of_the_tls_layer(region: Region) -> None:
    _device, cert = region.device(1)
    assert region.client.post("/v1/device/heartbeat", json={}).status_code == 401
    region.tls["cert"] = cert
    answer = region.client.post("/v1/device/heartbeat", json={})
    assert answer.status_code == 200 and answer.json() == {"next_heartbeat_s": 30}
    region.tls["cert"] = None
    spoofed = region.client.post(
        "/v1/device/heartbeat", json={}, headers={"x-client-cert": cert, "x-ssl-cert": cert}
    )
    assert spoofed.status_code == 401, "a header must never stand for the TLS layer"


def test_a_certificate_bound_to_no_enrolled_device_is_refused(region: Region) -> None:
    cert, _key = RegionCA.create("elsewhere").issue_client_cert("02:00:00:00:02:01", "SNX")
    region.tls["cert"] = cert.decode()
    answer = region.client.post("/v1/device/telemetry", json={"software_version": "1"})
    assert answer.status_code == 403 and answer.json()["error"] == "Forbidden"


def test_the_request_is_checked_before_the_administrator_token(region: Region) -> None:
    unknown_field = region.client.post("/v1/sites", json={"name": "X", "time_zone": "UTC", "x": 1})
    assert unknown_field.status_code == 422 and unknown_field.json()["field"] == "x"
    not_json = region.client.post(
        "/v1/rollouts", content=b"[", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    no_token = region.client.post("/v1/sites", json={"name": "X", "time_zone": "UTC"})
    assert no_token.status_code == 401 and no_token.json()["error"] == "Unauthenticated"
    bad_token = region.client.get("/v1/sites", headers={"authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert region.client.get("/v1/sites", headers=region.admin).status_code == 200


def test_the_channel_answers_a_bad_message_and_closes_on_revocation(region: Region) -> None:
    device, cert = region.device(3)
    region.tls["cert"] = cert
    with region.client.websocket_connect("/v1/device/commands") as ws:
        ws.send_json({"type": "hello"})
        assert ws.receive_json() == {
            "type": "error",
            "error": "Invalid",
            "field": "type",
            "reason": "expected {type: ack|progress, command_id, ...}",
        }
        region.tls["cert"] = None
        gone = region.client.delete(f"/v1/devices/{device.device_id}", headers=region.admin)
        assert gone.status_code == 200 and gone.json()["status"] == "revoked"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == CloseCode.REVOKED == 4003
    region.tls["cert"] = cert
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        region.client.websocket_connect("/v1/device/commands") as ws,
    ):
        ws.receive_json()
    assert refused.value.code == CloseCode.REVOKED
