"""Device reports over mutual TLS: heartbeat, telemetry and health.

Each goes through the group committer: the answer is sent only after the report is committed, so
a 200 means the report survives a crash.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.dm.api.deps import DeviceAuth, JsonObject, State
from services.dm.api.schemas import HeartbeatOut, PingOut, RecordedOut, StoredOut
from services.dm.domain import reporting

router = APIRouter(tags=["device reports"])

HEARTBEAT_SECONDS = 30


@router.post("/v1/device/heartbeat", response_model=HeartbeatOut)
async def heartbeat(payload: JsonObject, device: DeviceAuth, state: State) -> HeartbeatOut:
    now = state.now()
    await device.commit(lambda s, d: reporting.heartbeat(s, d, payload, now))
    return HeartbeatOut(next_heartbeat_s=HEARTBEAT_SECONDS)


@router.post("/v1/device/telemetry", response_model=StoredOut)
async def telemetry(payload: JsonObject, device: DeviceAuth, state: State) -> StoredOut:
    now = state.now()
    await device.commit(lambda s, d: reporting.store_telemetry(s, d, payload, now))
    return StoredOut(stored=True)


@router.post("/v1/device/health", response_model=RecordedOut)
async def health(payload: JsonObject, device: DeviceAuth, state: State) -> RecordedOut:
    now = state.now()
    await device.commit(lambda s, d: reporting.report_health(s, d, payload, now))
    return RecordedOut(recorded=True)


@router.get("/v1/device/ping", response_model=PingOut)
async def ping() -> PingOut:
    """An endpoint that does nothing: the baseline of the telemetry benchmark."""
    return PingOut(ok=True)
