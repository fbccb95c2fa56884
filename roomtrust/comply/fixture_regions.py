"""Deliberately weak fixture regions: the negative-control targets of the live scenario families.

Each is a small FastAPI app, served over real TLS on 127.0.0.1 (a certificate from its own region
CA, the services' own server context) in a thread of the test process. It speaks just enough of
the DM or meeting API for the feature steps to run against it, and breaks the claims on purpose:

- `WeakDmRegion` enrolls any device that asks (deployed or not), accepts telemetry without a
  client certificate and stores every field it is sent, swallows fault reports without raising an
  alert, and takes configuration profiles with any key;
- `WeakMeetingRegion` admits everyone to a locked conference at once (no lobby, no moderator) and
  lets an administrator switch encryption off.

They are fixture targets for tests only. Nothing in `services/` is weakened or switchable: these
apps share no code with the reference services beyond the CA and TLS helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from protocol.regions import MEETING_REGIONS
from protocol.signaling import MessageType
from protocol.tls import server_context
from services.common.ca import RegionCA, cert_pem, read_csr

_DM_TABLES = ("enterprises", "sites", "devices", "telemetry", "health_events", "profiles")


class FixtureRegion:
    """An ASGI app served with TLS on 127.0.0.1 from a background thread."""

    service = ""

    def __init__(self, home: Path, region: str, app: FastAPI) -> None:
        self.home = home.resolve()
        self.region = region
        self.directory = self.home / self.service / region
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca = RegionCA.create(f"weak-{self.service}-{region}")
        cert, key = self.ca.issue_server_cert(["127.0.0.1"])
        paths = [self.directory / n for n in ("server.pem", "server.key", "ca.pem")]
        for path, data in zip(paths, (cert, key, self.ca.cert_pem), strict=True):
            path.write_bytes(data)
        self.ca_file = paths[2]
        context = server_context(paths[0], paths[1])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            # the protocol classes are given, not looked up when the server starts: a module first
            # imported then could be dropped again by pytester's sys.modules snapshot, leaving the
            # server with a second copy of httptools whose exceptions it no longer catches
            http=HttpToolsProtocol,
            ws=WebSocketsSansIOProtocol,
            loop="asyncio",
            ssl_context_factory=lambda _config, _default: context,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.port = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.run(self.server.serve())

    def stack(self) -> dict[str, Any]:
        """A stack description (as in `.roomtrust/stack.json`) naming this region."""
        entry = {"url": self.url, "ca_file": str(self.ca_file)}
        return {
            "home": str(self.home),
            "schema_prefix": "",
            "services": {self.service: {self.region: entry}},
        }

    def __enter__(self) -> FixtureRegion:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the weak {self.service} region did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class WeakDmRegion(FixtureRegion):
    """A DM region that enrolls anyone, stores anything and raises no alert (see module doc)."""

    service = "dm"

    def __init__(self, home: Path, region: str = "us") -> None:
        self.lock = threading.Lock()
        super().__init__(home, region, self._app())
        self.db = sqlite3.connect(self.directory / "store.sqlite3", check_same_thread=False)
        with self.lock, self.db:
            for table in _DM_TABLES:
                self.db.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id TEXT, body TEXT)')

    def _store(self, table: str, row_id: str, body: Any) -> None:
        with self.lock, self.db:
            self.db.execute(
                f'INSERT INTO "{table}" VALUES (?, ?)', (row_id, json.dumps(body, default=str))
            )

    def _rows(self, table: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(f'SELECT id, body FROM "{table}"').fetchall()
        return [{"id": row_id, **json.loads(body)} for row_id, body in rows]

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/enterprises", status_code=201)
        async def register(request: Request) -> dict[str, Any]:
            enterprise_id = _new_id("ent")
            self._store("enterprises", enterprise_id, await request.json())
            return {"enterprise_id": enterprise_id}

        @app.post("/v1/auth/login")
        async def login() -> dict[str, Any]:
            return {"token": secrets.token_urlsafe(16)}

        @app.post("/v1/sites", status_code=201)
        async def site(request: Request) -> dict[str, Any]:
            site_id = _new_id("site")
            self._store("sites", site_id, await request.json())
            return {"site_id": site_id}

        @app.post("/v1/devices", status_code=201)
        async def deploy(request: Request) -> dict[str, Any]:
            device_id = _new_id("dev")
            self._store("devices", device_id, {**await request.json(), "enrolled": False})
            return {"device_id": device_id}

        @app.get("/v1/devices")
        async def devices() -> list[dict[str, Any]]:
            return [{"device_id": r.pop("id"), **r} for r in self._rows("devices")]

        @app.post("/v1/enroll", status_code=201)
        async def enroll(request: Request) -> dict[str, Any]:
            # weak on purpose: no check that an administrator deployed the device
            body = await request.json()
            csr, _subject = read_csr(body["csr_pem"].encode())
            device_id = _new_id("dev")
            self._store("devices", device_id, {"model": body.get("model"), "enrolled": True})
            certificate = self.ca.sign_client_csr(csr)
            return {"device_id": device_id, "certificate_pem": cert_pem(certificate).decode()}

        @app.post("/v1/device/telemetry")
        async def telemetry(request: Request) -> dict[str, Any]:
            # weak on purpose: no client certificate needed, every field stored as sent
            self._store("telemetry", _new_id("tm"), await request.json())
            return {"stored": True}

        @app.post("/v1/device/heartbeat")
        async def heartbeat() -> dict[str, Any]:
            return {"ok": True}

        @app.post("/v1/device/health")
        async def health(request: Request) -> dict[str, Any]:
            # weak on purpose: the fault is kept, but no alert is ever raised from it
            self._store("health_events", _new_id("he"), await request.json())
            return {"ok": True}

        @app.get("/v1/alerts")
        async def alerts() -> list[dict[str, Any]]:
            return []

        @app.post("/v1/config/profiles", status_code=201)
        async def profile(request: Request) -> dict[str, Any]:
            # weak on purpose: any configuration key is taken, end-user data included
            body = await request.json()
            profile_id = _new_id("prof")
            self._store("profiles", profile_id, body)
            return {"profile_id": profile_id, "name": body.get("name"), "version": 1}

        return app


class WeakMeetingRegion(FixtureRegion):
    """A meeting region with no lobby and an encryption switch (see module doc). The stack it
    describes names it for every meeting region, so steps that want all four find them."""

    service = "meeting"

    def __init__(self, home: Path, region: str = "sa") -> None:
        self.settings: dict[str, Any] = {"chat_enabled": True, "recording_enabled": True}
        self.accounts: dict[str, dict[str, Any]] = {}
        super().__init__(home, region, self._app())

    def stack(self) -> dict[str, Any]:
        stack = super().stack()
        entry = stack["services"]["meeting"][self.region]
        stack["services"]["meeting"] = dict.fromkeys(MEETING_REGIONS, entry)
        return stack

    def _account(self, username: str, display_name: str, role: str) -> dict[str, Any]:
        account = {
            "account_id": _new_id("acc"),
            "username": username,
            "display_name": display_name,
            "role": role,
        }
        self.accounts[username] = account
        return account

    def _app(self) -> FastAPI:
        app = FastAPI()
        enterprise_id = _new_id("ent")

        @app.post("/v1/enterprises", status_code=201)
        async def register(request: Request) -> dict[str, Any]:
            admin = (await request.json())["admin"]
            self._account(admin["username"], admin.get("display_name", "Admin"), "administrator")
            return {"enterprise_id": enterprise_id}

        @app.post("/v1/auth/login", response_model=None)
        async def login(request: Request) -> dict[str, Any] | JSONResponse:
            account = self.accounts.get((await request.json()).get("username", ""))
            if account is None:
                return JSONResponse({"error": "Unauthorized", "reason": "unknown"}, 401)
            return {
                "token": secrets.token_urlsafe(16),
                "account_id": account["account_id"],
                "enterprise_id": enterprise_id,
            }

        @app.post("/v1/accounts", status_code=201)
        async def account(request: Request) -> dict[str, Any]:
            body = await request.json()
            return self._account(body["username"], body["display_name"], body.get("role", "user"))

        @app.get("/v1/enterprise/settings")
        async def get_settings() -> dict[str, Any]:
            return dict(self.settings)

        @app.put("/v1/enterprise/settings")
        async def put_settings(request: Request) -> dict[str, Any]:
            # weak on purpose: any setting is taken, an encryption switch included
            self.settings.update(await request.json())
            return dict(self.settings)

        @app.post("/v1/conferences", status_code=201)
        async def conference(request: Request) -> dict[str, Any]:
            body = await request.json()
            cid = _new_id(self.region)
            return {"conference_id": cid, "region": self.region, **body}

        @app.websocket("/v1/signaling")
        async def signaling(ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_json({"type": MessageType.HELLO})
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    message = await ws.receive_json()
                    if message.get("type") == MessageType.JOIN:
                        # weak on purpose: a locked conference admits at once, no lobby
                        pid = _new_id("p")
                        admitted = {"type": MessageType.ADMITTED, "participant_id": pid}
                        await ws.send_json(admitted)
                        roster = {"type": MessageType.ROSTER, "participants": [], "lobby": []}
                        await ws.send_json(roster)

        return app
