"""The signaling WebSocket (`services.meeting.api.signaling` serves it)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from services.meeting.api.deps import Region

router = APIRouter()


@router.websocket("/v1/signaling")
async def signaling_socket(socket: WebSocket, region: Region) -> None:
    await region.signaling.serve(socket)
