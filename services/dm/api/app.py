"""The DM HTTP API: administrators (bearer token) and devices (mutual TLS) on one HTTPS port.

Device writes (heartbeat, telemetry, health) go through the group committer: the answer is sent
only after the reading is committed, so a 200 means the reading survives a crash.

Firmware: images are signed with the region's release key (`<region home>/release/`, apart from the
CA in `<region home>/ca/`) and kept in the region's object store. Rollouts run in the
`RolloutEngine`; a background task gives it the time every `ROLLOUT_TICK_SECONDS`, and every
command it queues goes out at once over the devices' own command channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.api import bearer_token, client_certificate, install_error_handlers
from services.common.asgi_tls import peer_cert_pem
from services.common.db import transaction
from services.common.errors import DomainError, Invalid
from services.common.firmware import public_key_pem
from services.common.group_commit import GroupCommitter
from services.common.runtime import RegionRuntime
from services.dm.api.command_hub import CommandHub
from services.dm.api.schemas import (
    ConfigProfileIn,
    DeviceIn,
    EnrollIn,
    EnterpriseIn,
    LoginIn,
    SiteIn,
)
from services.dm.domain import (
    accounts,
    alerts,
    commands,
    configuration,
    diagnostics,
    enrollment,
    fleet,
    images,
    reporting,
)
from services.dm.domain.rollouts import RolloutEngine
from services.dm.store.models import Device, OperationLogEntry

T = TypeVar("T")
log = logging.getLogger("roomtrust.dm")
HEARTBEAT_SECONDS = 30
ROLLOUT_TICK_SECONDS = 1.0


def build_app(runtime: RegionRuntime) -> FastAPI:
    offline_after = dt.timedelta(minutes=runtime.settings.offline_alert_minutes)
    committer: GroupCommitter | None = None
    hub = CommandHub()
    diagnostic_blobs = runtime.blob_store("diagnostics")
    firmware_blobs = runtime.blob_store("firmware")
    release_key = runtime.release_key()
    engine = RolloutEngine(runtime.sessions, runtime.region)

    async def purge_periodically() -> None:
        while True:
            try:
                await run_in_threadpool(
                    _in_tx,
                    lambda s: diagnostics.purge_expired(s, diagnostic_blobs, runtime.clock.now()),
                )
            except Exception:
                log.exception("diagnostics purge failed")
            await asyncio.sleep(runtime.settings.retention_interval_seconds)

    async def evaluate_alerts_periodically() -> None:
        while True:
            await asyncio.sleep(30)
            try:
                await run_in_threadpool(
                    _in_tx, lambda s: alerts.evaluate(s, runtime.clock.now(), offline_after)
                )
            except Exception:
                log.exception("alert evaluation failed")

    async def tick_rollouts_periodically() -> None:
        while True:
            await asyncio.sleep(ROLLOUT_TICK_SECONDS)
            try:
                await in_engine(partial(engine.tick, now=runtime.clock.now()))
            except Exception:
                log.exception("rollout tick failed")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        nonlocal committer
        committer = GroupCommitter(runtime.sessions)
        tasks = [
            asyncio.create_task(evaluate_alerts_periodically()),
            asyncio.create_task(purge_periodically()),
            asyncio.create_task(tick_rollouts_periodically()),
        ]
        yield
        for task in tasks:
            task.cancel()
        committer.close()

    app = FastAPI(
        title=f"roomtrust DM service ({runtime.region})",
        version="1",
        lifespan=lifespan,
        description=(
            "Device management: enrollment, device sessions, telemetry, health alerts, bulk "
            "configuration, remote diagnosis, signed firmware and staged rollouts."
        ),
    )
    install_error_handlers(app)

    def _in_tx(fn: Callable[[Session], T]) -> T:
        with transaction(runtime.sessions) as session:
            return fn(session)

    async def in_tx(fn: Callable[[Session], T]) -> T:
        return await run_in_threadpool(_in_tx, fn)

    async def as_admin(request: Request, fn: Callable[[Session, accounts.AdminIdentity], T]) -> T:
        token = bearer_token(request)
        now = runtime.clock.now()

        def job(session: Session) -> T:
            return fn(session, accounts.authenticate(session, token, now))

        return await in_tx(job)

    async def as_device(request: Request, fn: Callable[[Session, Device], T]) -> T:
        cert = client_certificate(request)
        assert committer is not None

        def job(session: Session) -> T:
            return fn(session, reporting.authenticate_device(session, cert))

        return await committer.run(job)

    async def as_admin_in_engine(
        request: Request, fn: Callable[[Session, accounts.AdminIdentity], T]
    ) -> T:
        """Like `as_admin`, inside the rollout engine; then deliver the commands it queued."""
        token = bearer_token(request)
        now = runtime.clock.now()

        def job(session: Session) -> T:
            return fn(session, accounts.authenticate(session, token, now))

        return await in_engine(job)

    tasks: set[asyncio.Task[Any]] = set()

    def background(work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without waiting for it; a failure is logged."""

        def done(task: asyncio.Task[Any]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("background work failed", exc_info=task.exception())

        task = asyncio.ensure_future(work)
        tasks.add(task)
        task.add_done_callback(done)

    async def in_engine(fn: Callable[[Session], T]) -> T:
        """Run rollout-engine work on the group committer's writer thread (many device reports
        share one commit); once committed, deliver the commands it queued."""
        assert committer is not None
        result, notify = await committer.run(engine.job(fn))
        await deliver(notify)
        return result

    async def json_object(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise Invalid("body is not JSON", field=None) from None
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object", field=None)
        return body

    # -- health and public registration ---------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        count = await in_tx(lambda s: s.scalar(select(func.count()).select_from(Device)))
        return {
            "service": "dm",
            "region": runtime.region,
            "status": "ok",
            "devices": count,
            "connected": hub.count,
        }

    @app.post("/v1/enterprises", status_code=201)
    async def register(body: EnterpriseIn) -> dict[str, Any]:
        now = runtime.clock.now()
        enterprise = await in_tx(
            lambda s: accounts.register_enterprise(
                s,
                region=runtime.region,
                name=body.name,
                email=body.admin.email,
                password=body.admin.password,
                first_name=body.admin.first_name,
                last_name=body.admin.last_name,
                phone=body.admin.phone,
                now=now,
            )
        )
        return {"enterprise_id": enterprise.id, "region": enterprise.region}

    @app.post("/v1/auth/login")
    async def login(body: LoginIn) -> dict[str, Any]:
        now = runtime.clock.now()
        token, admin = await in_tx(lambda s: accounts.login(s, body.email, body.password, now))
        return {"token": token, "enterprise_id": admin.enterprise_id}

    # -- administrators ---------------------------------------------------------------------------

    @app.post("/v1/sites", status_code=201)
    async def create_site(body: SiteIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        site = await as_admin(
            request,
            lambda s, admin: fleet.create_site(
                s,
                admin,
                name=body.name,
                time_zone=body.time_zone,
                latitude=body.latitude,
                longitude=body.longitude,
                server_id=body.server_id,
                now=now,
            ),
        )
        return {"site_id": site.id, **body.model_dump()}

    @app.get("/v1/sites")
    async def list_sites(request: Request) -> list[dict[str, Any]]:
        sites = await as_admin(request, fleet.list_sites)
        return [
            {
                "site_id": s.id,
                "name": s.name,
                "time_zone": s.time_zone,
                "latitude": s.latitude,
                "longitude": s.longitude,
                "server_id": s.server_id,
            }
            for s in sites
        ]

    @app.post("/v1/devices", status_code=201)
    async def deploy(body: DeviceIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_admin(
            request,
            lambda s, admin: fleet.DeviceView(
                fleet.deploy_device(
                    s,
                    admin,
                    mac=body.mac,
                    serial_number=body.serial_number,
                    model=body.model,
                    site_id=body.site_id,
                    name=body.name,
                    tags=body.tags,
                    now=now,
                ),
                "deployed",
            ).as_dict(),
        )

    @app.get("/v1/devices")
    async def list_devices(request: Request) -> list[dict[str, Any]]:
        now = runtime.clock.now()
        return await as_admin(
            request,
            lambda s, admin: [
                view.as_dict() for view in fleet.list_devices(s, admin, now, offline_after)
            ],
        )

    @app.delete("/v1/devices/{device_id}")
    async def undeploy(device_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        device = await as_admin(
            request, lambda s, admin: fleet.undeploy_device(s, admin, device_id, now)
        )
        await hub.close_device(device.id, "certificate revoked")
        return {"device_id": device.id, "status": "revoked"}

    # -- bulk configuration and remote diagnosis --------------------------------------------------

    async def deliver(device_ids: list[str]) -> int:
        """Send pending commands to those of the devices that are connected now (one read and one
        write for the whole batch); returns to how many devices something was sent."""
        online = [d for d in dict.fromkeys(device_ids) if hub.connected(d)]
        if not online:
            return 0
        pending = await in_tx(
            lambda s: {
                device_id: [commands.as_message(c) for c in rows]
                for device_id, rows in commands.pending_for(s, online).items()
            }
        )
        results = await asyncio.gather(*(hub.send(d, pending[d]) for d in online))
        sent = [
            m["command_id"] for d, ok in zip(online, results, strict=True) if ok for m in pending[d]
        ]
        if sent:
            now = runtime.clock.now()
            assert committer is not None
            await committer.run(lambda s: commands.mark_delivered(s, sent, now))
        return sum(results)

    async def push_pending(device_id: str) -> int:
        pending = await in_tx(
            lambda s: [commands.as_message(c) for c in commands.pending(s, device_id)]
        )
        if await hub.send(device_id, pending):
            now = runtime.clock.now()
            ids = [m["command_id"] for m in pending]
            assert committer is not None
            await committer.run(lambda s: commands.mark_delivered(s, ids, now))
            return 1
        return 0

    @app.post("/v1/config/profiles", status_code=201)
    async def create_profile(body: ConfigProfileIn, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        profile = await as_admin(
            request,
            lambda s, admin: configuration.create_profile(
                s, admin, name=body.name, values=body.values, target=body.target, now=now
            ),
        )
        return {
            "profile_id": profile.id,
            "name": profile.name,
            "version": profile.version,
            "values": profile.values,
            "target": profile.target,
        }

    @app.post("/v1/config/profiles/{profile_id}/push")
    async def push_profile(profile_id: int, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        device_ids = await as_admin(
            request,
            lambda s, admin: [d.id for d in configuration.push_profile(s, admin, profile_id, now)],
        )
        online = await deliver(device_ids)
        return {"devices": len(device_ids), "delivered_now": online, "device_ids": device_ids}

    @app.get("/v1/config/drift")
    async def config_drift(request: Request) -> list[dict[str, Any]]:
        return await as_admin(request, configuration.drift)

    @app.post("/v1/devices/{device_id}/diagnostics", status_code=202)
    async def request_diagnostics(device_id: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        command = await as_admin(
            request, lambda s, admin: diagnostics.request(s, admin, device_id, now)
        )
        online = await deliver([device_id])
        return {"command_id": command.id, "delivered_now": bool(online)}

    @app.get("/v1/diagnostics")
    async def list_diagnostics(request: Request) -> list[dict[str, Any]]:
        return await as_admin(
            request,
            lambda s, admin: [
                {
                    "bundle_id": b.id,
                    "device_id": b.device_id,
                    "size": b.size,
                    "created_at": b.created_at.isoformat(),
                }
                for b in diagnostics.list_bundles(s, admin)
            ],
        )

    @app.get("/v1/diagnostics/{bundle_id}")
    async def fetch_diagnostics(bundle_id: str, request: Request) -> Response:
        now = runtime.clock.now()
        data = await as_admin(
            request, lambda s, admin: diagnostics.fetch(s, admin, bundle_id, diagnostic_blobs, now)
        )
        return Response(data, media_type="application/json")

    @app.get("/v1/alerts")
    async def list_alerts(request: Request, state: str | None = None) -> list[dict[str, Any]]:
        if state is not None and state not in ("active", "acknowledged", "cleared"):
            raise Invalid("state must be active, acknowledged or cleared", field="state")
        return await as_admin(
            request,
            lambda s, admin: [alerts.alert_dict(a) for a in alerts.list_alerts(s, admin, state)],
        )

    @app.post("/v1/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: int, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_admin(
            request,
            lambda s, admin: alerts.alert_dict(
                alerts.transition(s, admin, alert_id, "acknowledged", now)
            ),
        )

    @app.post("/v1/alerts/{alert_id}/clear")
    async def clear(alert_id: int, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()
        return await as_admin(
            request,
            lambda s, admin: alerts.alert_dict(
                alerts.transition(s, admin, alert_id, "cleared", now)
            ),
        )

    @app.get("/v1/oplog")
    async def operation_log(request: Request, limit: int = 200) -> list[dict[str, Any]]:
        limit = max(1, min(limit, 1000))
        return await as_admin(
            request,
            lambda s, admin: [
                e.as_dict()
                for e in s.scalars(
                    select(OperationLogEntry)
                    .where(OperationLogEntry.enterprise_id == admin.enterprise_id)
                    .order_by(OperationLogEntry.id.desc())
                    .limit(limit)
                )
            ],
        )

    # -- firmware catalogue and rollouts ----------------------------------------------------------

    @app.get("/v1/firmware/release-key")
    async def release_public_key() -> dict[str, str]:
        """The public half of the region's release key: what a device model carries built in."""
        return {"algorithm": "Ed25519", "public_key_pem": public_key_pem(release_key).decode()}

    @app.post("/v1/firmware/images", status_code=201)
    async def upload_image(
        request: Request, model: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > images.MAX_IMAGE_BYTES:
            raise Invalid(f"an image is at most {images.MAX_IMAGE_BYTES} bytes", field="image")
        data = await request.body()
        now = runtime.clock.now()
        return await as_admin(
            request,
            lambda s, admin: images.image_dict(
                images.upload_image(
                    s,
                    admin,
                    model=model,
                    version=version,
                    image=data,
                    release_key=release_key,
                    blobs=firmware_blobs,
                    now=now,
                )
            ),
        )

    @app.get("/v1/firmware/images")
    async def list_images(request: Request) -> list[dict[str, Any]]:
        return await as_admin(
            request, lambda s, admin: [images.image_dict(i) for i in images.list_images(s, admin)]
        )

    @app.post("/v1/rollouts", status_code=201)
    async def create_rollout(request: Request) -> dict[str, Any]:
        body = await json_object(request)
        now = runtime.clock.now()
        return await as_admin_in_engine(
            request, lambda s, admin: engine.status_of(s, engine.create(s, admin, body, now))
        )

    @app.get("/v1/rollouts")
    async def list_rollouts(request: Request) -> list[dict[str, Any]]:
        return await as_admin_in_engine(request, engine.list_rollouts)

    @app.get("/v1/rollouts/{rollout_id}")
    async def rollout_status(rollout_id: str, request: Request) -> dict[str, Any]:
        return await as_admin_in_engine(
            request, lambda s, admin: engine.status(s, admin, rollout_id)
        )

    @app.post("/v1/rollouts/{rollout_id}/{op}")
    async def control_rollout(rollout_id: str, op: str, request: Request) -> dict[str, Any]:
        now = runtime.clock.now()

        def job(s: Session, admin: accounts.AdminIdentity) -> dict[str, Any]:
            if op == "start":
                row = engine.start(s, admin, rollout_id, now)
            else:
                row = engine.control(s, admin, rollout_id, op, now)
            return engine.status_of(s, row)

        return await as_admin_in_engine(request, job)

    # -- devices ------------------------------------------------------------------------------------

    @app.post("/v1/enroll", status_code=201)
    async def enroll(body: EnrollIn) -> dict[str, Any]:
        now = runtime.clock.now()
        result = await in_tx(
            lambda s: enrollment.enroll(
                s, runtime.ca, model=body.model, csr_pem=body.csr_pem, now=now
            )
        )
        return {
            "device_id": result.device_id,
            "certificate_pem": result.certificate_pem,
            "ca_pem": result.ca_pem,
        }

    @app.post("/v1/device/heartbeat")
    async def heartbeat(request: Request) -> dict[str, Any]:
        payload = await json_object(request)
        now = runtime.clock.now()
        await as_device(request, lambda s, d: reporting.heartbeat(s, d, payload, now))
        return {"next_heartbeat_s": HEARTBEAT_SECONDS}

    @app.post("/v1/device/telemetry")
    async def telemetry(request: Request) -> dict[str, Any]:
        payload = await json_object(request)
        now = runtime.clock.now()
        await as_device(request, lambda s, d: reporting.store_telemetry(s, d, payload, now))
        return {"stored": True}

    @app.post("/v1/device/health")
    async def health(request: Request) -> dict[str, Any]:
        payload = await json_object(request)
        now = runtime.clock.now()
        await as_device(request, lambda s, d: reporting.report_health(s, d, payload, now))
        return {"recorded": True}

    @app.post("/v1/device/diagnostics", status_code=201)
    async def upload_diagnostics(request: Request) -> dict[str, Any]:
        payload = await json_object(request)
        now = runtime.clock.now()
        bundle = await as_device(
            request, lambda s, d: diagnostics.upload(s, d, payload, diagnostic_blobs, now)
        )
        return {"bundle_id": bundle.id}

    @app.get("/v1/device/firmware/{download_id}")
    async def download_firmware(download_id: str, request: Request) -> Response:
        """A device's own download (mTLS): the signed package, encrypted under the download's
        key, which reached the device in its firmware command over the command channel."""
        cert = client_certificate(request)
        now = runtime.clock.now()

        def read(s: Session) -> tuple[str, str, bytes]:
            device = reporting.authenticate_device(s, cert)
            _download, blob_key, key = images.open_download(s, device, download_id)
            return device.id, blob_key, key

        device_id, blob_key, key = await in_tx(read)
        data = await run_in_threadpool(
            lambda: images.encrypt_package(firmware_blobs.get(blob_key), key, download_id)
        )
        started = partial(
            engine.download_started, device_id=device_id, download_id=download_id, now=now
        )
        background(in_engine(started))  # recorded without holding up the answer
        return Response(data, media_type="application/octet-stream")

    @app.websocket("/v1/device/commands")
    async def command_channel(socket: WebSocket) -> None:
        cert = peer_cert_pem(socket.scope)

        def authenticate(s: Session) -> Device:
            return reporting.authenticate_device(s, cert)

        try:
            device = await in_tx(authenticate)
        except DomainError as exc:
            await socket.close(code=4003, reason=exc.reason[:120])
            return
        await socket.accept()
        await hub.attach(device.id, socket)
        try:
            await push_pending(device.id)
            while True:
                message = await socket.receive_json()
                now = runtime.clock.now()
                job = partial(handle_device_message, cert=cert, message=message, now=now)
                try:
                    await in_engine(job)
                except DomainError as exc:
                    await socket.send_json({"type": "error", **exc.as_dict()})
                    if exc.status in (401, 403):
                        await socket.close(code=4003, reason=exc.reason[:120])
                        return
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.detach(device.id, socket)

    def handle_device_message(
        s: Session, *, cert: str | None, message: Any, now: dt.datetime
    ) -> None:
        device = reporting.authenticate_device(s, cert)  # revocation checked on every message
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in ("ack", "progress"):
            raise Invalid("expected {type: ack|progress, command_id, ...}", field="type")
        command = commands.own_command(s, device, message.get("command_id"))
        if kind == "progress":
            if command.kind != "firmware":
                raise Invalid("progress is reported on firmware commands only", field="type")
            engine.device_progress(s, device, command, message.get("stage"), now)
        else:
            first = command.acked_at is None
            result = message.get("result")
            if command.kind == "firmware" and first and isinstance(result, dict):
                engine.device_result(s, device, command, result, now)
            commands.acknowledge(s, device, command.id, result, now)
        device.last_seen = now

    @app.get("/v1/device/ping")
    async def ping() -> dict[str, bool]:
        """An endpoint that does nothing: the baseline of the telemetry benchmark."""
        return {"ok": True}

    return app
