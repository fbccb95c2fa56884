"""Health alerts: list them (optionally by state), acknowledge and clear them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.common.errors import Invalid
from services.dm.api.deps import AdminAuth, State
from services.dm.api.schemas import AlertOut
from services.dm.domain import alerts

router = APIRouter(tags=["alerts"])

STATES = ("active", "acknowledged", "cleared")


@router.get("/v1/alerts", response_model=list[AlertOut])
async def list_alerts(admin: AdminAuth, state: str | None = None) -> list[dict[str, object]]:
    if state is not None and state not in STATES:
        raise Invalid("state must be active, acknowledged or cleared", field="state")
    return await admin.run(
        lambda s, who: [alerts.alert_dict(a) for a in alerts.list_alerts(s, who, state)]
    )


async def _transition(
    admin: AdminAuth, state: State, alert_id: int, target: str
) -> dict[str, object]:
    now = state.now()
    return await admin.run(
        lambda s, who: alerts.alert_dict(alerts.transition(s, who, alert_id, target, now))
    )


@router.post("/v1/alerts/{alert_id}/acknowledge", response_model=AlertOut)
async def acknowledge(alert_id: int, admin: AdminAuth, state: State) -> dict[str, Any]:
    return await _transition(admin, state, alert_id, "acknowledged")


@router.post("/v1/alerts/{alert_id}/clear", response_model=AlertOut)
async def clear(alert_id: int, admin: AdminAuth, state: State) -> dict[str, Any]:
    return await _transition(admin, state, alert_id, "cleared")
