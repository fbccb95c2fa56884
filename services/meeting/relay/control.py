"""The relay's control API (docs/relay-control.md): HTTPS on 127.0.0.1, bearer token.

The meeting region calls it to admit a participant (it gets the participant's SRTP keys back, or
supplies its own), to re-key, to remove, and to read counters. Every handler is `async` and runs on
the relay's event loop, the same loop as the UDP protocol, so the core is never touched from two
threads. Keys come only from this TLS channel; nothing here can make the relay accept plain RTP.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from media_core.relay_core import ParticipantKeys, RelayCore, RelayError, RelayErrorKind
from media_core.srtp import KeyMaterial, KeyMaterialError, SrtpProfile
from services.common.api import bearer_token, install_error_handlers
from services.common.errors import Conflict, Invalid, NotFound, Unauthenticated

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT = b"beat\n"


@dataclass
class RelayState:
    """What the control API serves: the core and where the relay takes media."""

    core: RelayCore
    name: str
    region: str
    media_host: str
    media_port: int
    token: str
    internal_errors: int = 0
    stopping: bool = False  # set when the process is asked to exit; heartbeats end then


class KeysIn(BaseModel):
    profile: SrtpProfile = SrtpProfile.AES_CM_128_HMAC_SHA1_80
    send_key: str | None = Field(
        default=None, description="base64 key||salt the participant protects with; made if absent"
    )
    receive_key: str | None = Field(
        default=None, description="base64 key||salt the participant unprotects with"
    )


class AddParticipant(KeysIn):
    conference_id: str = Field(pattern=ID_PATTERN)


def _keys(body: KeysIn) -> ParticipantKeys:
    found: dict[str, KeyMaterial] = {}
    for field in ("send_key", "receive_key"):
        encoded = getattr(body, field)
        try:
            found[field] = (
                KeyMaterial.generate(body.profile, secrets.token_bytes)
                if encoded is None
                else KeyMaterial.decode(body.profile, encoded)
            )
        except KeyMaterialError as exc:
            raise Invalid(str(exc), field) from None
    return ParticipantKeys(found["send_key"], found["receive_key"])


def _check_id(value: str, field: str) -> str:
    if not re.fullmatch(ID_PATTERN, value):
        raise Invalid("must be 1..128 of A-Z a-z 0-9 . _ : -", field)
    return value


def _relay_error(exc: RelayError, field: str) -> Exception:
    if exc.kind is RelayErrorKind.DUPLICATE_PARTICIPANT:
        return Conflict(exc.reason, field)
    return NotFound(exc.reason, field)


def build_control_app(state: RelayState) -> FastAPI:
    app = FastAPI(title="roomtrust media relay control", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    def media() -> dict[str, Any]:
        return {"host": state.media_host, "port": state.media_port}

    def grant(participant_id: str, conference_id: str, keys: ParticipantKeys) -> dict[str, Any]:
        return {
            "participant_id": participant_id,
            "conference_id": conference_id,
            "profile": keys.send.profile.value,
            "send_key": keys.send.encode(),
            "receive_key": keys.receive.encode(),
            "media": media(),
            "relay": state.name,
        }

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if request.url.path != "/v1/health":
            token = bearer_token(request) or ""
            if not hmac.compare_digest(token.encode(), state.token.encode()):
                error = Unauthenticated("a valid relay control token is required", "authorization")
                return JSONResponse(error.as_dict(), status_code=error.status)
        return await call_next(request)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "name": state.name,
            "region": state.region,
            "media": media(),
            "participants": len(state.core.participants()),
        }

    @app.get("/v1/heartbeat")
    async def heartbeat() -> StreamingResponse:
        """A never-ending response with one line a second: its end means the relay is gone."""

        async def beats() -> AsyncIterator[bytes]:
            steps = 4
            while not state.stopping:
                yield HEARTBEAT
                for _ in range(steps):
                    if state.stopping:
                        return
                    await asyncio.sleep(HEARTBEAT_INTERVAL / steps)

        return StreamingResponse(beats(), media_type="text/plain")

    @app.get("/v1/counters")
    async def counters() -> dict[str, int]:
        return {**state.core.counters.as_dict(), "internal_errors": state.internal_errors}

    @app.get("/v1/participants")
    async def participants() -> list[dict[str, Any]]:
        return [
            {
                "participant_id": p.participant_id,
                "conference_id": p.conference_id,
                "address": list(p.address) if p.address else None,
                "profile": p.profile,
                "rekey_pending": p.rekey_pending,
                "packets_in": p.packets_in,
            }
            for p in state.core.participants()
        ]

    @app.put("/v1/participants/{participant_id}", status_code=201)
    async def add(participant_id: str, body: AddParticipant) -> dict[str, Any]:
        _check_id(participant_id, "participant_id")
        keys = _keys(body)
        try:
            state.core.add_participant(participant_id, body.conference_id, keys)
        except RelayError as exc:
            raise _relay_error(exc, "participant_id") from None
        return grant(participant_id, body.conference_id, keys)

    @app.post("/v1/participants/{participant_id}/rekey")
    async def rekey(participant_id: str, body: KeysIn) -> dict[str, Any]:
        keys = _keys(body)
        try:
            state.core.rekey_participant(participant_id, keys)
            conference_id = state.core.participant(participant_id).conference_id
        except RelayError as exc:
            raise _relay_error(exc, "participant_id") from None
        return grant(participant_id, conference_id, keys)

    @app.delete("/v1/participants/{participant_id}")
    async def remove(participant_id: str) -> dict[str, Any]:
        try:
            state.core.remove_participant(participant_id)
        except RelayError as exc:
            raise _relay_error(exc, "participant_id") from None
        return {"removed": participant_id}

    @app.post("/v1/conferences/{conference_id}/rekey")
    async def rekey_conference(conference_id: str, body: KeysIn | None = None) -> dict[str, Any]:
        if body is not None and (body.send_key or body.receive_key):
            raise Invalid("a conference re-key makes fresh keys for everyone", "send_key")
        profile = body.profile if body is not None else SrtpProfile.AES_CM_128_HMAC_SHA1_80
        try:
            members = state.core.conference_members(conference_id)
        except RelayError as exc:
            raise _relay_error(exc, "conference_id") from None
        grants = {}
        for participant_id in members:
            keys = _keys(KeysIn(profile=profile))
            state.core.rekey_participant(participant_id, keys)
            grants[participant_id] = grant(participant_id, conference_id, keys)
        return {"conference_id": conference_id, "participants": grants}

    return app
