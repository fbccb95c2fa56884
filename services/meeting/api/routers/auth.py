"""Signing up and signing in: enterprise registration, login and logout, a room system's
registration with its one-time code, and the caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller, Region
from services.meeting.domain import accounts
from services.meeting.domain.accounts import Identity
from services.meeting.store.models import Account

router = APIRouter()


@router.post("/v1/enterprises", status_code=201, response_model=responses.EnterpriseRegistered)
async def register(body: schemas.EnterpriseIn, region: Region) -> responses.EnterpriseRegistered:
    now = region.clock.now()
    a = body.admin
    ent, admin = await region.run(
        lambda s: accounts.register_enterprise(
            s,
            region=region.region,
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
    return responses.EnterpriseRegistered(
        enterprise_id=ent.id, administrator_id=admin.id, region=region.region
    )


@router.post("/v1/auth/login", response_model=responses.LoginOut)
async def login(body: schemas.LoginIn, region: Region) -> responses.LoginOut:
    now = region.clock.now()
    token, account, expires = await region.run(
        lambda s: accounts.login(s, body.username, body.password, now)
    )
    return responses.LoginOut(
        token=token,
        account_id=account.id,
        enterprise_id=account.enterprise_id,
        role=account.role,
        expires_at=expires.isoformat(),
    )


@router.post(
    "/v1/room-systems/register", status_code=201, response_model=responses.RoomSystemRegistered
)
async def register_room_system(
    body: schemas.RoomSystemRegisterIn, region: Region
) -> responses.RoomSystemRegistered:
    now = region.clock.now()
    ca = region.runtime.ca
    account, pem = await region.run(
        lambda s: accounts.register_room_system(s, ca, body.registration_code, body.csr_pem, now)
    )
    return responses.RoomSystemRegistered(
        account_id=account.id, certificate_pem=pem, ca_pem=ca.cert_pem.decode()
    )


@router.post("/v1/auth/logout", response_model=responses.LoggedOut)
async def logout(caller: Caller) -> responses.LoggedOut:
    token = caller.token
    await caller.run(lambda s, _me: accounts.logout(s, token))
    return responses.LoggedOut(logged_out=True)


@router.get("/v1/me", response_model=responses.Me, response_model_exclude_unset=True)
async def me(caller: Caller) -> dict[str, Any]:
    def view(s: Session, me: Identity) -> dict[str, Any]:
        account = s.get(Account, me.account_id)
        assert account is not None
        return accounts.account_view(account) | {"permissions": sorted(me.permissions)}

    return await caller.run(view)
