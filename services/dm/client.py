"""A small HTTPS client for the DM API, used by the command line, the demo, load set-up and tests.

`DmAdmin` speaks the administrator API with a bearer token. `DeviceCredential` holds one device's
key and certificate files and opens mutual-TLS clients with them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.common.ca import key_pem, make_csr, new_private_key
from services.common.tls import client_context


class DmError(RuntimeError):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.body: dict[str, Any] = response.json()
        except ValueError:
            self.body = {"reason": response.text}
        super().__init__(f"{self.status} {self.body}")


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise DmError(response)
    return response.json()


class DmAdmin:
    def __init__(self, url: str, ca_file: Path | str, timeout: float = 30.0) -> None:
        self.url = url
        self.ca_file = Path(ca_file)
        self.http = httpx.Client(base_url=url, verify=client_context(self.ca_file), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DmAdmin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def register(self, name: str, email: str, password: str, **admin: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "admin": {
                "email": email,
                "password": password,
                "first_name": "Ada",
                "last_name": "Admin",
                **admin,
            },
        }
        result: dict[str, Any] = checked(self.http.post("/v1/enterprises", json=body))
        return result

    def login(self, email: str, password: str) -> str:
        token: str = checked(
            self.http.post("/v1/auth/login", json={"email": email, "password": password})
        )["token"]
        self.http.headers["authorization"] = f"Bearer {token}"
        return token

    def create_site(self, name: str, time_zone: str = "UTC", **extra: Any) -> str:
        body = {"name": name, "time_zone": time_zone, **extra}
        site_id: str = checked(self.http.post("/v1/sites", json=body))["site_id"]
        return site_id

    def deploy(self, mac: str, serial_number: str, model: str, site_id: str, **extra: Any) -> str:
        body = {
            "mac": mac,
            "serial_number": serial_number,
            "model": model,
            "site_id": site_id,
            **extra,
        }
        device_id: str = checked(self.http.post("/v1/devices", json=body))["device_id"]
        return device_id

    def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = checked(self.http.get("/v1/devices"))
        return result

    def undeploy(self, device_id: str) -> None:
        checked(self.http.delete(f"/v1/devices/{device_id}"))

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        result: list[dict[str, Any]] = checked(self.http.get("/v1/alerts", params=params))
        return result

    def create_profile(
        self, name: str, values: dict[str, Any], target: dict[str, str]
    ) -> dict[str, Any]:
        body = {"name": name, "values": values, "target": target}
        result: dict[str, Any] = checked(self.http.post("/v1/config/profiles", json=body))
        return result

    def push_profile(self, profile_id: int) -> dict[str, Any]:
        result: dict[str, Any] = checked(self.http.post(f"/v1/config/profiles/{profile_id}/push"))
        return result

    def push_status(self, profile_id: int) -> dict[str, Any]:
        """The profile's pushes as the devices acknowledged them (applied, refused)."""
        result: dict[str, Any] = checked(self.http.get(f"/v1/config/profiles/{profile_id}/status"))
        return result

    def request_diagnostics(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = checked(self.http.post(f"/v1/devices/{device_id}/diagnostics"))
        return result

    def device_action(self, device_id: str, action: str, **payload: Any) -> dict[str, Any]:
        """A remote action for one device: reboot, factory_reset, log_level (level=...),
        renew_certificate."""
        body = {"action": action, **payload}
        result: dict[str, Any] = checked(
            self.http.post(f"/v1/devices/{device_id}/actions", json=body)
        )
        return result

    def bulk_action(self, action: str, **body: Any) -> dict[str, Any]:
        """A remote action for many devices: device_ids=[...] or target={site_id|model|tag}."""
        result: dict[str, Any] = checked(
            self.http.post("/v1/devices/actions", json={"action": action, **body})
        )
        return result

    def fetch_diagnostics(self, bundle_id: str) -> bytes:
        response = self.http.get(f"/v1/diagnostics/{bundle_id}")
        if response.status_code >= 400:
            raise DmError(response)
        return response.content

    def oplog(self, limit: int = 200, action: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if action is not None:
            params["action"] = action
        result: list[dict[str, Any]] = checked(self.http.get("/v1/oplog", params=params))
        return result

    # -- firmware and rollouts ---------------------------------------------------------------------

    def release_key(self) -> str:
        """The region's release public key (PEM), as devices carry it built in."""
        pem: str = checked(self.http.get("/v1/firmware/release-key"))["public_key_pem"]
        return pem

    def upload_image(self, model: str, version: str, image: bytes) -> dict[str, Any]:
        result: dict[str, Any] = checked(
            self.http.post(
                "/v1/firmware/images",
                params={"model": model, "version": version},
                content=image,
                headers={"content-type": "application/octet-stream"},
            )
        )
        return result

    def images(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = checked(self.http.get("/v1/firmware/images"))
        return result

    def create_rollout(self, image_id: str, **plan: Any) -> dict[str, Any]:
        body = {"image_id": image_id, **plan}
        result: dict[str, Any] = checked(self.http.post("/v1/rollouts", json=body))
        return result

    def rollouts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = checked(self.http.get("/v1/rollouts"))
        return result

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        result: dict[str, Any] = checked(self.http.get(f"/v1/rollouts/{rollout_id}"))
        return result

    def control_rollout(self, rollout_id: str, op: str) -> dict[str, Any]:
        """`op`: start, pause, resume, abort or rollback."""
        result: dict[str, Any] = checked(self.http.post(f"/v1/rollouts/{rollout_id}/{op}"))
        return result


@dataclass
class DeviceCredential:
    """A device's key pair and, once enrolled, its certificate, kept as files in `directory`."""

    mac: str
    serial_number: str
    model: str
    directory: Path
    device_id: str | None = None

    @property
    def key_file(self) -> Path:
        return self.directory / f"{self.mac.replace(':', '')}.key"

    @property
    def cert_file(self) -> Path:
        return self.directory / f"{self.mac.replace(':', '')}.pem"

    def csr_pem(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = new_private_key()
        self.key_file.write_bytes(key_pem(key))
        return make_csr(key, self.mac, self.serial_number).decode()

    def enroll(self, url: str, ca_file: Path | str) -> httpx.Response:
        """Ask the region for a certificate; on 201 the certificate is stored beside the key."""
        with httpx.Client(base_url=url, verify=client_context(Path(ca_file)), timeout=30) as http:
            response = http.post(
                "/v1/enroll", json={"model": self.model, "csr_pem": self.csr_pem()}
            )
        if response.status_code == 201:
            body = response.json()
            self.cert_file.write_text(body["certificate_pem"])
            self.device_id = body["device_id"]
        return response

    def ssl_context(self, ca_file: Path | str) -> ssl.SSLContext:
        return client_context(Path(ca_file), self.cert_file, self.key_file)

    def client(self, url: str, ca_file: Path | str, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=url, verify=self.ssl_context(ca_file), **kwargs)
