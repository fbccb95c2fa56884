"""Recordings: listing, viewing, downloading, sharing and deleting (MT-13, MT-16)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller
from services.meeting.domain import recording, recording_media

router = APIRouter()


class WaveFile(Response):
    media_type = recording_media.CONTENT_TYPE


@router.get("/v1/recordings", response_model=list[responses.RecordingOut])
async def list_recordings(caller: Caller) -> list[dict[str, Any]]:
    return await caller.run(
        lambda s, me: [recording.view(r) for r in recording.list_visible(s, me)]
    )


@router.get("/v1/recordings/{recording_id}", response_model=responses.RecordingOut)
async def get_recording(recording_id: str, caller: Caller) -> dict[str, Any]:
    return await caller.run(lambda s, me: recording.view(recording.get(s, me, recording_id)))


@router.get("/v1/recordings/{recording_id}/content", response_model=bytes, response_class=WaveFile)
async def recording_content(recording_id: str, caller: Caller) -> Response:
    """The decrypted recording: a WAVE file of the call's audio."""
    storage = caller.region.storage
    data = await caller.run(lambda s, me: recording.content(s, storage, me, recording_id))
    return WaveFile(data)


@router.post("/v1/recordings/{recording_id}/share", response_model=responses.RecordingOut)
async def share_recording(
    recording_id: str, body: schemas.ShareIn, caller: Caller
) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: recording.view(recording.share(s, me, recording_id, body.account_id, now))
    )


@router.delete("/v1/recordings/{recording_id}", response_model=responses.Deleted)
async def delete_recording(recording_id: str, caller: Caller) -> responses.Deleted:
    now = caller.region.clock.now()
    storage = caller.region.storage
    await caller.run(lambda s, me: recording.delete(s, storage, me, recording_id, now))
    return responses.Deleted(deleted=True)
