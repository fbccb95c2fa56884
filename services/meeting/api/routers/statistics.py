"""Statistics (MT-20), the dashboard and the operation log (MT-19)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import Invalid
from services.meeting.api import responses
from services.meeting.api.deps import Caller
from services.meeting.domain import cdr, permissions
from services.meeting.domain.accounts import Identity
from services.meeting.store.models import OperationLogEntry

router = APIRouter()


@router.get("/v1/statistics/cdr", response_model=list[responses.CdrRecord])
async def statistics_cdr(caller: Caller) -> list[dict[str, Any]]:
    return await caller.run(cdr.records)


@router.get("/v1/statistics/report", response_model=responses.Report)
async def statistics_report(caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(lambda s, me: cdr.report(s, me, now))


@router.get("/v1/statistics/billing", response_model=responses.Billing)
async def statistics_billing(caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(lambda s, me: cdr.billing(s, me, now))


@router.get("/v1/dashboard", response_model=responses.Dashboard)
async def dashboard(caller: Caller) -> dict[str, Any]:
    signaling = caller.region.signaling
    return await caller.run(
        lambda s, me: cdr.dashboard(s, me, signaling.live_count(me.enterprise_id))
    )


@router.get("/v1/oplog", response_model=list[responses.OplogEntry])
async def operation_log(caller: Caller, limit: int = 200) -> list[dict[str, Any]]:
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

    return await caller.run(entries)
