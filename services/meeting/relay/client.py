"""A client for a relay's control API (what the meeting region and `roomtrust status` use).

`RelayControl.for_relay(home, region, ready)` reads the relay's ready file entry and the region's
control token; every call raises `RelayControlError` (status, field, reason) on a refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from services.common.tls import client_context
from services.meeting.relay.files import control_token, running_relays

AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
AEAD_AES_128_GCM = "AEAD_AES_128_GCM"


class RelayControlError(RuntimeError):
    def __init__(self, status: int, field: str | None, reason: str) -> None:
        super().__init__(f"{status} {field or ''}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason


class RelayControl:
    def __init__(self, control_url: str, ca_file: Path | str, token: str, timeout: float = 5.0):
        self.control_url = control_url
        self._client = httpx.AsyncClient(
            base_url=control_url,
            verify=client_context(ca_file),
            headers={"authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    @classmethod
    def for_relay(cls, home: Path, region: str, ready: dict[str, Any]) -> RelayControl:
        return cls(ready["control_url"], ready["ca_file"], control_token(home, region))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> RelayControl:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._client.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = {"reason": response.text}
            raise RelayControlError(response.status_code, error.get("field"), error.get("reason"))
        return response.json()

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/v1/health")
        return result

    async def counters(self) -> dict[str, int]:
        result: dict[str, int] = await self._call("GET", "/v1/counters")
        return result

    async def participants(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/v1/participants")
        return result

    async def add_participant(
        self,
        participant_id: str,
        conference_id: str,
        profile: str = AES_CM_128_HMAC_SHA1_80,
        send_key: str | None = None,
        receive_key: str | None = None,
    ) -> dict[str, Any]:
        """Admit a participant; the answer holds its keys (made by the relay unless given)."""
        body = {"conference_id": conference_id, "profile": profile}
        body |= {k: v for k, v in (("send_key", send_key), ("receive_key", receive_key)) if v}
        result: dict[str, Any] = await self._call("PUT", f"/v1/participants/{participant_id}", body)
        return result

    async def rekey(
        self,
        participant_id: str,
        profile: str = AES_CM_128_HMAC_SHA1_80,
        send_key: str | None = None,
        receive_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"profile": profile}
        body |= {k: v for k, v in (("send_key", send_key), ("receive_key", receive_key)) if v}
        result: dict[str, Any] = await self._call(
            "POST", f"/v1/participants/{participant_id}/rekey", body
        )
        return result

    async def remove_participant(self, participant_id: str) -> None:
        await self._call("DELETE", f"/v1/participants/{participant_id}")

    async def rekey_conference(
        self, conference_id: str, profile: str = AES_CM_128_HMAC_SHA1_80
    ) -> dict[str, dict[str, Any]]:
        result = await self._call(
            "POST", f"/v1/conferences/{conference_id}/rekey", {"profile": profile}
        )
        grants: dict[str, dict[str, Any]] = result["participants"]
        return grants


def read_counters(home: Path, region: str, timeout: float = 2.0) -> dict[str, dict[str, int]]:
    """Counters of every running relay of a region, by relay name (for `roomtrust status`)."""
    token = control_token(home, region)
    found: dict[str, dict[str, int]] = {}
    for ready in running_relays(home, region):
        try:
            with httpx.Client(
                base_url=ready["control_url"],
                verify=client_context(ready["ca_file"]),
                headers={"authorization": f"Bearer {token}"},
                timeout=timeout,
            ) as client:
                response = client.get("/v1/counters")
                response.raise_for_status()
                found[ready["name"]] = response.json()
        except httpx.HTTPError:
            continue
    return found
