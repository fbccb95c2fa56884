"""The DM HTTP API: administrators (bearer token) and devices (mutual TLS) on one HTTPS port.

`build_app` only wires the parts: the shared state (`state.py`), the routers per area
(`routers/`), the device command channel (`channel.py`) and the background loops with the
lifespan that runs them (`background.py`).
"""

from __future__ import annotations

from fastapi import FastAPI

from services.common.api import install_error_handlers
from services.common.runtime import RegionRuntime
from services.dm.api import background, channel
from services.dm.api.routers import (
    accounts,
    alerts,
    config,
    diagnostics,
    enrollment,
    firmware,
    fleet,
    health,
    lifecycle,
    reports,
    rollouts,
)
from services.dm.api.state import DmState

ROUTERS = (
    health.router,
    accounts.router,
    fleet.router,
    config.router,
    diagnostics.router,
    alerts.router,
    firmware.router,
    rollouts.router,
    enrollment.router,
    lifecycle.router,
    reports.router,
    channel.router,
)


def build_app(runtime: RegionRuntime) -> FastAPI:
    state = DmState.open(runtime)
    app = FastAPI(
        title=f"roomtrust DM service ({runtime.region})",
        version="1",
        lifespan=background.lifespan(state),
        description=(
            "Device management: enrollment, device sessions, telemetry, health alerts, bulk "
            "configuration, remote diagnosis, signed firmware and staged rollouts."
        ),
    )
    app.state.dm = state
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
