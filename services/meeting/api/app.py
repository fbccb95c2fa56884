"""The meeting HTTP API and WSS signaling on one HTTPS port of a region (see docs/meeting-api.md).

`build_app` only wires: the region's shared parts (`deps.MeetingRegion`), the routers of each area
(`routers/`), the signaling socket and the background loops. Every request is authenticated afresh
(session token, or a room system's client certificate) and checked against the permission matrix
in `services.meeting.domain.permissions`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from fastapi import FastAPI

from protocol.regions import MEETING_REGIONS
from services.common.api import install_error_handlers
from services.common.runtime import RegionRuntime
from services.common.settings import SettingsError
from services.meeting import logs
from services.meeting.api import background
from services.meeting.api.deps import MeetingRegion
from services.meeting.api.media_keys import MediaKeyHook
from services.meeting.api.replication import Replication
from services.meeting.api.routers import (
    accounts,
    auth,
    conferences,
    enterprise,
    public,
    recordings,
    segments,
    signaling,
    statistics,
)
from services.meeting.api.signaling import Signaling
from services.meeting.domain import placement, recording
from services.meeting.relay.files import INTEROP_TOKEN_FILE, PSTN_TOKEN_FILE
from services.meeting.store.conference_store import ConferenceStore

DEFAULT_LATENCY_FILE = Path(__file__).resolve().parents[1] / "config" / "latency.yaml"
ROUTERS = (
    public,
    auth,
    accounts,
    enterprise,
    segments,
    conferences,
    recordings,
    statistics,
    signaling,
)


def load_latency_matrix(path: Path | None = None) -> placement.LatencyMatrix:
    path = path or Path(os.environ.get("ROOMTRUST_MEETING_LATENCY_FILE") or DEFAULT_LATENCY_FILE)
    matrix: dict[str, dict[str, float]] = yaml.safe_load(path.read_text())
    placement.validate_matrix(matrix, MEETING_REGIONS)
    return matrix


def recording_storage(runtime: RegionRuntime) -> recording.RecordingStorage:
    """Running recordings in the state directory; finished ones in the region's blob store when
    the settings name one (S3 in the cloud), else they stay where they were written."""
    settings = runtime.settings
    key_file = settings.recording_key_file
    if key_file is not None and not key_file.is_file():
        raise SettingsError(f"ROOMTRUST_RECORDING_KEY_FILE {key_file}: No such file")
    finished = runtime.blob_store("recordings") if settings.blob_store != "directory" else None
    try:
        return recording.region_storage(runtime.directory, finished, key_file)
    except ValueError as exc:
        raise SettingsError(f"ROOMTRUST_RECORDING_KEY_FILE: {exc}") from None


def build_app(
    runtime: RegionRuntime,
    media_keys: MediaKeyHook | None = None,
    replication: Replication | None = None,
) -> FastAPI:
    storage = recording_storage(runtime)
    logs.install(runtime.directory / "logs", runtime.clock)
    store = ConferenceStore(runtime.sessions, storage, runtime.region, runtime.clock)
    signaling_core = Signaling(
        region=runtime.region,
        store=store,
        clock=runtime.clock,
        media_keys=media_keys,
        pstn_token_file=runtime.settings.pstn_token_file or runtime.directory / PSTN_TOKEN_FILE,
        interop_token_file=(
            runtime.settings.interop_token_file or runtime.directory / INTEROP_TOKEN_FILE
        ),
        replication=replication,
    )
    region = MeetingRegion(runtime, load_latency_matrix(), storage, signaling_core)
    app = FastAPI(
        title=f"roomtrust meeting service ({runtime.region})",
        version="1",
        lifespan=background.lifespan(region, media_keys),
        description="Accounts and roles, conferences, lobby, moderation, chat, recording, CDR.",
    )
    app.state.meeting = region
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app
