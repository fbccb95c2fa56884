"""Accounts, roles, access and room systems of an enterprise (MT-14, MT-15, MT-19).

An account's view carries an administrator's profile fields only for an administrator, so the
account routes leave unset fields out of their answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller
from services.meeting.domain import accounts
from services.meeting.store.models import CustomRole

router = APIRouter()


def custom_role_view(role: CustomRole) -> responses.CustomRoleOut:
    return responses.CustomRoleOut(
        custom_role_id=role.id, name=role.name, permissions=list(role.permissions)
    )


@router.post(
    "/v1/accounts",
    status_code=201,
    response_model=responses.AccountOut,
    response_model_exclude_unset=True,
)
async def create_account(body: schemas.AccountIn, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
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
        )
    )


@router.get(
    "/v1/accounts", response_model=list[responses.AccountOut], response_model_exclude_unset=True
)
async def list_accounts(caller: Caller) -> list[dict[str, Any]]:
    return await caller.run(
        lambda s, me: [accounts.account_view(a) for a in accounts.list_accounts(s, me)]
    )


@router.put(
    "/v1/accounts/{account_id}/role",
    response_model=responses.AccountOut,
    response_model_exclude_unset=True,
)
async def assign_role(account_id: str, body: schemas.RoleIn, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: accounts.account_view(
            accounts.assign_role(s, me, account_id, body.role, body.custom_role_id, now)
        )
    )


@router.post(
    "/v1/accounts/{account_id}/revoke",
    response_model=responses.AccountOut,
    response_model_exclude_unset=True,
)
async def revoke(account_id: str, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    view = await caller.run(
        lambda s, me: accounts.account_view(
            accounts.set_access(s, me, account_id, accounts.REVOKED, now)
        )
    )
    await caller.region.signaling.close_account(account_id, "access revoked")
    return view


@router.post(
    "/v1/accounts/{account_id}/grant",
    response_model=responses.AccountOut,
    response_model_exclude_unset=True,
)
async def grant(account_id: str, caller: Caller) -> dict[str, Any]:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: accounts.account_view(
            accounts.set_access(s, me, account_id, accounts.GRANTED, now)
        )
    )


@router.post("/v1/custom-roles", status_code=201, response_model=responses.CustomRoleOut)
async def create_custom_role(body: schemas.CustomRoleIn, caller: Caller) -> responses.CustomRoleOut:
    now = caller.region.clock.now()
    return await caller.run(
        lambda s, me: custom_role_view(
            accounts.create_custom_role(s, me, body.name, body.permissions, now)
        )
    )


@router.get("/v1/custom-roles", response_model=list[responses.CustomRoleOut])
async def list_custom_roles(caller: Caller) -> list[responses.CustomRoleOut]:
    return await caller.run(
        lambda s, me: [custom_role_view(r) for r in accounts.list_custom_roles(s, me)]
    )


@router.post("/v1/room-systems", status_code=201, response_model=responses.RoomSystemCreated)
async def create_room_system(
    body: schemas.RoomSystemIn, caller: Caller
) -> responses.RoomSystemCreated:
    now = caller.region.clock.now()
    account, code = await caller.run(
        lambda s, me: accounts.create_room_system(s, me, body.display_name, now)
    )
    return responses.RoomSystemCreated(account_id=account.id, registration_code=code)
