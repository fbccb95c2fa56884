"""A client of a region's PSTN gateway trunk API, standing in for the carrier that places calls.

`PstnTrunk.for_region(home, region)` reads the gateway's ready file and the region's gateway token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from protocol.tls import client_context
from services.meeting.relay.files import pstn_token, region_directory


class PstnTrunk:
    def __init__(self, url: str, ca_file: Path | str, token: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=url,
            verify=client_context(ca_file),
            headers={"authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    @classmethod
    def for_region(cls, home: Path, region: str) -> PstnTrunk:
        ready = json.loads((region_directory(home, region) / "pstn" / "ready.json").read_text())
        return cls(ready["control_url"], ready["ca_file"], pstn_token(home, region))

    def __enter__(self) -> PstnTrunk:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def dial(self, conference_id: str, caller: str, pin: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"conference_id": conference_id, "caller": caller}
        if pin is not None:
            body["pin"] = pin
        result: dict[str, Any] = self._json(self.http.post("/v1/calls", json=body))
        return result

    def call(self, call_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/v1/calls/{call_id}"))
        return result

    def hang_up(self, call_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.delete(f"/v1/calls/{call_id}"))
        return result
