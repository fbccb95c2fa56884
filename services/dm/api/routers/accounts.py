"""Enterprises and administrators: public registration, login, and the operation log (MT-19)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from services.dm.api.deps import AdminAuth, State
from services.dm.api.schemas import (
    EnterpriseIn,
    EnterpriseOut,
    LoginIn,
    LoginOut,
    OperationLogEntryOut,
)
from services.dm.domain import accounts
from services.dm.store import queries

router = APIRouter(tags=["accounts"])

OPLOG_PAGE_MAX = 1000


@router.post("/v1/enterprises", status_code=201, response_model=EnterpriseOut)
async def register(body: EnterpriseIn, state: State) -> EnterpriseOut:
    now = state.now()
    enterprise = await state.in_tx(
        lambda s: accounts.register_enterprise(
            s,
            region=state.region,
            name=body.name,
            email=body.admin.email,
            password=body.admin.password,
            first_name=body.admin.first_name,
            last_name=body.admin.last_name,
            phone=body.admin.phone,
            now=now,
        )
    )
    return EnterpriseOut(enterprise_id=enterprise.id, region=enterprise.region)


@router.post("/v1/auth/login", response_model=LoginOut)
async def login(body: LoginIn, state: State) -> LoginOut:
    now = state.now()
    token, admin = await state.in_tx(lambda s: accounts.login(s, body.email, body.password, now))
    return LoginOut(token=token, enterprise_id=admin.enterprise_id)


@router.get("/v1/oplog", response_model=list[OperationLogEntryOut])
async def operation_log(
    admin: AdminAuth, limit: int = 200, action: str | None = Query(default=None, max_length=100)
) -> list[dict[str, object]]:
    """The enterprise's newest operation log entries, newest first (`limit` 1 to 1000), of one
    `action` (e.g. `device.certificate_renew`) if given."""
    limit = max(1, min(limit, OPLOG_PAGE_MAX))
    return await admin.run(
        lambda s, who: [
            e.as_dict() for e in queries.operation_log(s, who.enterprise_id, limit, action)
        ]
    )
