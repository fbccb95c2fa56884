"""The meeting HTTP API and WSS signaling on one HTTPS port of a region (see docs/meeting-api.md).

Every request is authenticated afresh (session token, or a room system's client certificate) and
checked against the permission matrix in `services.meeting.domain.permissions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.api import bearer_token, client_certificate, install_error_handlers
from services.common.db import transaction
from services.common.errors import Invalid
from services.common.runtime import RegionRuntime
from services.common.settings import MEETING_REGIONS
from services.meeting import logs
from services.meeting.api import schemas
from services.meeting.api.signaling import MediaKeyHook, Signaling, SupervisedMedia
from services.meeting.domain import (
    accounts,
    cdr,
    conferences,
    enterprise,
    permissions,
    placement,
    recording,
    retention,
)
from services.meeting.domain.accounts import Identity
from services.meeting.relay.files import INTEROP_TOKEN_FILE, PSTN_TOKEN_FILE
from services.meeting.store.models import Account, OperationLogEntry

T = TypeVar("T")
log = logging.getLogger("roomtrust.meeting")
DEFAULT_LATENCY_FILE = Path(__file__).resolve().parents[1] / "config" / "latency.yaml"


def load_latency_matrix(path: Path | None = None) -> dict[str, dict[str, float]]:
    path = path or Path(os.environ.get("ROOMTRUST_MEETING_LATENCY_FILE") or DEFAULT_LATENCY_FILE)
    matrix: dict[str, dict[str, float]] = yaml.safe_load(path.read_text())
    placement.validate_matrix(matrix, MEETING_REGIONS)
    return matrix


def build_app(runtime: RegionRuntime, media_keys: MediaKeyHook | None = None) -> FastAPI:
    region = runtime.region
    matrix = load_latency_matrix()
    storage = recording.region_storage(runtime.directory)
    logs.install(runtime.directory / "logs", runtime.clock)
    signaling = Signaling(
        region=region,
        sessions=runtime.sessions,
        clock=runtime.clock,
        storage=storage,
        media_keys=media_keys,
        pstn_token_file=runtime.directory / PSTN_TOKEN_FILE,
        interop_token_file=runtime.directory / INTEROP_TOKEN_FILE,
    )

    def _in_tx(fn: Callable[[Session], T]) -> T:
        with transaction(runtime.sessions) as session:
            return fn(session)

    async def in_tx(fn: Callable[[Session], T]) -> T:
        return await run_in_threadpool(_in_tx, fn)

    def run_retention() -> retention.RetentionReport:
        return _in_tx(
            lambda s: retention.run(
                s,
                runtime.clock,
                storage=storage,
                log_dir=runtime.directory / "logs",
                days=runtime.settings.retention_days,
            )
        )

    async def retention_periodically() -> None:
        while True:
            try:
                report = await run_in_threadpool(run_retention)
                if report.enterprises or report.log_files:
                    log.info("retention purged %s", report.as_dict())
            except Exception:
                log.exception("retention run failed")
            await asyncio.sleep(runtime.settings.retention_interval_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(retention_periodically())]
        if isinstance(media_keys, SupervisedMedia):  # relay heartbeats and failover
            tasks.append(asyncio.create_task(media_keys.run(signaling.push)))
        log.info("meeting region %s started", region)
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # let them clean up

    app = FastAPI(
        title=f"roomtrust meeting service ({region})",
        version="1",
        lifespan=lifespan,
        description="Accounts and roles, conferences, lobby, moderation, chat, recording, CDR.",
    )
    app.state.signaling = signaling
    app.state.storage = storage
    install_error_handlers(app)

    async def as_account(request: Request, fn: Callable[[Session, Identity], T]) -> T:
        token = bearer_token(request)
        cert = client_certificate(request)
        now = runtime.clock.now()
        return await in_tx(lambda s: fn(s, accounts.authenticate(s, token, cert, now)))

    # -- public ---------------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "service": "meeting",
            "region": region,
            "status": "ok",
            "live_conferences": signaling.live_count(),
        }

    @app.get("/v1/permissions")
    async def permission_matrix() -> dict[str, Any]:
        return {
            "permissions": dict(permissions.PERMISSIONS),
            "roles": permissions.matrix(),
            "customizable": sorted(permissions.CUSTOMIZABLE),
            "room_system": sorted(permissions.ROOM_SYSTEM),
        }

    @app.post("/v1/placement")
    async def place(body: schemas.PlacementIn) -> dict[str, Any]:
        chosen = placement.place(body.participant_locations, matrix, MEETING_REGIONS)
        return {
            "region": chosen.region,
            "mean_latency_ms": chosen.mean_latency_ms,
            "max_latency_ms": chosen.max_latency_ms,
            "candidates": chosen.candidates,
        }

    @app.get("/v1/placement/locations")
    async def locations() -> list[str]:
        return sorted(matrix)

    @app.post("/v1/enterprises", status_code=201)
    async def register(body: schemas.EnterpriseIn) -> dict[str, Any]:
        now = runtime.clock.now()
        a = body.admin
        ent, admin = await in_tx(
            lambda s: accounts.register_enterprise(
                s,
                region=region,
                name=body.name,
                contract_end=body.contract_end,
                username=a.username,
                password=a.password,
                sso=a.sso,
                first_name=a.first_name,
                last_name=a.last_name,
                display_name=a.display_name,
                address=a.address,
                company=a.company,
                now=now,
            )
        )
        return {"enterprise_id": ent.id, "administrator_id": admin.id, "region": region}

    @app.post("/v1/auth/login")
    async def login(body: schemas.LoginIn) -> dict[str, Any]:
        now = runtime.clock.now()
        token, account, expires = await in_tx(
            lambda s: accounts.login(s, body.username, body.password, now)
        )
        return {
            "token": token,
            "account_id": account.id,
            "enterprise_id": account.enterprise_id,
            "role": account.role,
            "expires_at": expires.isoformat(),
        }

    @app.post("/v1/room-systems/register", status_code=201)
    async def register_room_system(body: schemas.RoomSystemRegisterIn) -> dict[str, Any]:
        now = runtime.clock.now()
        account, pem = await in_tx(
            lambda s: accounts.register_room_system(
                s, runtime.ca, body.registration_code, body.csr_pem, now
            )
        )
        return {
            "account_id": account.id,
            "certificate_pem": pem,
            "ca_pem": runtime.ca.cert_pem.decode(),
        }

    # -- accounts -------------------------------------------------------------------------------

    @app.post("/v1/auth/logout")
    async def logout(request: Request) -> dict[str, Any]:
        token = bearer_token(request)
        await as_account(request, lambda s, _me: accounts.logout(s, token))
        return {"logged_out": True}

    @app.get("/v1/me")
    async def me(request: Request) -> dict[str, Any]:
        def view(s: Session, me: Identity) -> dict[str, Any]:
            account = s.get(Account, me.account_id)
            assert account is not None
            return accounts.account_view(account) | {"permissions": sorted(me.permissions)}

        return await as_account(request, view)

    @app.post("/v1/accounts", status_code=201)
    async def create_account(body: schemas.AccountIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: accounts.account_view(
                accounts.create_account(
                    s,
                    me,
                    username=body.username,
                    display_name=body.display_name,
                    password=body.password,
                    sso=body.sso,
                    role=body.role,
                    custom_role_id=body.custom_role_id,
                    now=now,
                )
            ),
        )

    @app.get("/v1/accounts")
    async def list_accounts(request: Request) -> list[dict[str, Any]]:
        return await as_account(
            request, lambda s, me: [accounts.account_view(a) for a in accounts.list_accounts(s, me)]
        )

    @app.put("/v1/accounts/{account_id}/role")
    async def assign_role(
        account_id: str, body: schemas.RoleIn, request: Request
    ) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: accounts.account_view(
                accounts.assign_role(s, me, account_id, body.role, body.custom_role_id, now)
            ),
        )

    @app.post("/v1/accounts/{account_id}/revoke")
    async def revoke(account_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        view = await as_account(
            request,
            lambda s, me: accounts.account_view(
                accounts.set_access(s, me, account_id, accounts.REVOKED, now)
            ),
        )
        await signaling.close_account(account_id, "access revoked")
        return view

    @app.post("/v1/accounts/{account_id}/grant")
    async def grant(account_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: accounts.account_view(
                accounts.set_access(s, me, account_id, accounts.GRANTED, now)
            ),
        )

    def custom_role_view(role: Any) -> dict[str, Any]:
        return {"custom_role_id": role.id, "name": role.name, "permissions": list(role.permissions)}

    @app.post("/v1/custom-roles", status_code=201)
    async def create_custom_role(body: schemas.CustomRoleIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: custom_role_view(
                accounts.create_custom_role(s, me, body.name, body.permissions, now)
            ),
        )

    @app.get("/v1/custom-roles")
    async def list_custom_roles(request: Request) -> list[dict[str, Any]]:
        return await as_account(
            request,
            lambda s, me: [custom_role_view(r) for r in accounts.list_custom_roles(s, me)],
        )

    @app.post("/v1/room-systems", status_code=201)
    async def create_room_system(body: schemas.RoomSystemIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        account, code = await as_account(
            request, lambda s, me: accounts.create_room_system(s, me, body.display_name, now)
        )
        return {"account_id": account.id, "registration_code": code}

    # -- enterprise settings ------------------------------------------------------------------------

    @app.get("/v1/enterprise/settings")
    async def get_settings(request: Request) -> dict[str, Any]:
        return await as_account(
            request,
            lambda s, me: enterprise.settings_view(enterprise.enterprise_of(s, me.enterprise_id)),
        )

    @app.put("/v1/enterprise/settings")
    async def put_settings(body: schemas.SettingsIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: enterprise.settings_view(
                enterprise.update_settings(s, me, body.changes(), now)
            ),
        )

    # -- conferences ------------------------------------------------------------------------------

    def conference_view(conference: Any) -> dict[str, Any]:
        live = signaling.live.get(conference.id)
        return conferences.view(conference, live=live is not None and not live.ended)

    @app.post("/v1/conferences", status_code=201)
    async def create_conference(body: schemas.ConferenceIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: conference_view(
                conferences.create(
                    s,
                    me,
                    region=region,
                    regions=MEETING_REGIONS,
                    matrix=matrix,
                    title=body.title,
                    kind=body.kind,
                    password=body.password,
                    hidden=body.hidden,
                    locked=body.locked,
                    escalation=body.escalation,
                    participant_locations=body.participant_locations,
                    now=now,
                )
            ),
        )

    @app.get("/v1/conferences")
    async def directory(request: Request, scope: str = "directory") -> list[dict[str, Any]]:
        return await as_account(
            request,
            lambda s, me: [conference_view(c) for c in conferences.directory(s, me, scope)],
        )

    @app.get("/v1/conferences/{conference_id}")
    async def get_conference(conference_id: str, request: Request) -> dict[str, Any]:
        return await as_account(
            request, lambda s, me: conference_view(conferences.get(s, me, conference_id, region))
        )

    @app.patch("/v1/conferences/{conference_id}")
    async def update_conference(
        conference_id: str, body: schemas.ConferenceUpdate, request: Request
    ) -> dict[str, Any]:
        now = runtime.clock.now()
        changes = body.changes()
        view = await as_account(
            request,
            lambda s, me: conference_view(
                conferences.update(s, me, conference_id, region, changes, now)
            ),
        )
        await signaling.set_lock(conference_id, changes.get("locked"), changes.get("escalation"))  # type: ignore[arg-type]
        return view

    @app.post("/v1/conferences/{conference_id}/end")
    async def end_conference(conference_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()

        def authorize(s: Session, me: Identity) -> str:
            conference = conferences.get(s, me, conference_id, region)
            conferences.authorize_end(me, conference)
            if conference.owner_id != me.account_id:
                accounts.log(
                    s,
                    me.username,
                    "conference.end",
                    at=now,
                    enterprise_id=me.enterprise_id,
                    target=conference.id,
                )
            return conference.kind

        kind = await as_account(request, authorize)
        was_live = await signaling.end_conference(conference_id)
        deleted = False
        if not was_live:
            deleted = await in_tx(lambda s: conferences.finish(s, conference_id))
        else:
            deleted = kind == conferences.ONE_OFF
        return {"ended": True, "was_live": was_live, "deleted": deleted}

    @app.delete("/v1/conferences/{conference_id}")
    async def delete_conference(conference_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        await as_account(
            request, lambda s, me: conferences.delete(s, me, conference_id, region, now)
        )
        await signaling.end_conference(conference_id)
        return {"deleted": True}

    # -- recordings -------------------------------------------------------------------------------

    @app.get("/v1/recordings")
    async def list_recordings(request: Request) -> list[dict[str, Any]]:
        return await as_account(
            request, lambda s, me: [recording.view(r) for r in recording.list_visible(s, me)]
        )

    @app.get("/v1/recordings/{recording_id}")
    async def get_recording(recording_id: str, request: Request) -> dict[str, Any]:
        return await as_account(
            request, lambda s, me: recording.view(recording.get(s, me, recording_id))
        )

    @app.get("/v1/recordings/{recording_id}/content")
    async def recording_content(recording_id: str, request: Request) -> Response:
        data = await as_account(
            request, lambda s, me: recording.content(s, storage, me, recording_id)
        )
        return Response(data, media_type="application/octet-stream")

    @app.post("/v1/recordings/{recording_id}/share")
    async def share_recording(
        recording_id: str, body: schemas.ShareIn, request: Request
    ) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(
            request,
            lambda s, me: recording.view(
                recording.share(s, me, recording_id, body.account_id, now)
            ),
        )

    @app.delete("/v1/recordings/{recording_id}")
    async def delete_recording(recording_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        await as_account(request, lambda s, me: recording.delete(s, storage, me, recording_id, now))
        return {"deleted": True}

    # -- statistics, dashboard, operation log --------------------------------------------------------

    @app.get("/v1/statistics/cdr")
    async def statistics_cdr(request: Request) -> list[dict[str, Any]]:
        return await as_account(request, cdr.records)

    @app.get("/v1/statistics/report")
    async def statistics_report(request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(request, lambda s, me: cdr.report(s, me, now))

    @app.get("/v1/statistics/billing")
    async def statistics_billing(request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_account(request, lambda s, me: cdr.billing(s, me, now))

    @app.get("/v1/dashboard")
    async def dashboard(request: Request) -> dict[str, Any]:
        return await as_account(
            request,
            lambda s, me: cdr.dashboard(s, me, signaling.live_count(me.enterprise_id)),
        )

    @app.get("/v1/oplog")
    async def operation_log(request: Request, limit: int = 200) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise Invalid("limit must be 1 to 1000", field="limit")

        def entries(s: Session, me: Identity) -> list[dict[str, Any]]:
            me.require(permissions.ENTERPRISE_SETTINGS)
            return [
                e.as_dict()
                for e in s.scalars(
                    select(OperationLogEntry)
                    .where(OperationLogEntry.enterprise_id == me.enterprise_id)
                    .order_by(OperationLogEntry.id.desc())
                    .limit(limit)
                )
            ]

        return await as_account(request, entries)

    # -- signaling --------------------------------------------------------------------------------

    @app.websocket("/v1/signaling")
    async def signaling_socket(socket: WebSocket) -> None:
        await signaling.serve(socket)

    return app
