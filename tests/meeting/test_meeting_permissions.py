"""MT-11: the six roles and two custom roles hold exactly the permissions of seed 001, and the API
enforces that matrix on live requests."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from protocol.meeting_client import MeetingApi
from services.common.errors import Forbidden
from services.meeting.domain import permissions as perms

# The seed's lists, written out independently of the code's table: role -> permission -> allowed.
SEED_USER = {
    "call.place_receive",
    "media.self_disable",
    "conference.create",
    "conference.password",
    "conference.hide",
    "conference.participants",
    "conference.mute",
    "chat",
    "live_stream",
    "record",
}
SEED_OPERATION_MANAGER = {
    "dashboard",
    "member.manage",
    "files.collaboration",
    "statistics",
    "enterprise.settings",
    "teams.access",
}
SEED_MEETING_OPERATOR = {"dashboard", "meeting.manage", "vmr.manage"}
SEED_MEETING_MANAGER = {
    "dashboard",
    "meeting.manage",
    "vmr.manage",
    "files.collaboration",
    "statistics",
}
SEED_CUSTOMIZABLE = {
    "dashboard",
    "member.manage",
    "meeting.manage",
    "vmr.manage",
    "files.collaboration",
    "statistics",
    "enterprise.settings",
    "segment.resources",
    "teams.access",
}
SEED_ADMINISTRATOR = {"role.assign"} | SEED_CUSTOMIZABLE
CUSTOM_A = {"dashboard", "statistics"}
CUSTOM_B = {"member.manage", "segment.resources", "teams.access", "vmr.manage"}

EXPECTED: dict[str, set[str]] = {
    "user": SEED_USER,
    "operation_manager": SEED_OPERATION_MANAGER,
    "meeting_operator": SEED_MEETING_OPERATOR,
    "meeting_manager": SEED_MEETING_MANAGER,
    "administrator": SEED_ADMINISTRATOR,
    "customize:A": CUSTOM_A,
    "customize:B": CUSTOM_B,
    "customize:none": set(),
}
ALL_PERMISSIONS = SEED_USER | SEED_ADMINISTRATOR


def granted(role: str) -> frozenset[str]:
    if role.startswith("customize:"):
        custom = {"customize:A": CUSTOM_A, "customize:B": CUSTOM_B}.get(role, set())
        return perms.permissions_of(perms.CUSTOMIZE, custom)
    return perms.permissions_of(role)


def test_the_code_knows_exactly_the_seed_permissions() -> None:
    assert set(perms.PERMISSIONS) == ALL_PERMISSIONS
    assert set(perms.ROLES) == {
        "user",
        "operation_manager",
        "meeting_operator",
        "meeting_manager",
        "customize",
        "administrator",
    }
    assert set(perms.CUSTOMIZABLE) == SEED_CUSTOMIZABLE


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("permission", sorted(ALL_PERMISSIONS))
def test_role_matrix_cell(role: str, permission: str) -> None:
    assert perms.allowed(granted(role), permission) is (permission in EXPECTED[role])


def test_only_the_administrator_assigns_roles() -> None:
    holders = [role for role in EXPECTED if perms.allowed(granted(role), perms.ROLE_ASSIGN)]
    assert holders == ["administrator"]


def test_a_custom_role_cannot_hold_user_or_role_assignment_permissions() -> None:
    for permission in ("role.assign", "record", "call.place_receive"):
        with pytest.raises(Exception) as caught:
            perms.validate_custom_permissions(["dashboard", permission])
        assert getattr(caught.value, "field", None) == "permissions.1"
    # even smuggled into the stored set, they are not granted
    assert perms.permissions_of(perms.CUSTOMIZE, {"role.assign", "dashboard"}) == {"dashboard"}


def test_require_refuses_with_forbidden() -> None:
    with pytest.raises(Forbidden):
        perms.require(granted("meeting_operator"), perms.STATISTICS)


# -- the live API enforces the same matrix --------------------------------------------------------


def _probe(api: MeetingApi, permission: str) -> int:
    """A request that needs exactly this permission; returns its status."""
    probes: dict[str, Any] = {
        "conference.create": ("POST", "/v1/conferences", {"title": "probe", "kind": "vmr"}),
        "member.manage": ("GET", "/v1/accounts", None),
        "role.assign": (
            "POST",
            "/v1/custom-roles",
            {"name": f"probe-{secrets.token_hex(3)}", "permissions": ["dashboard"]},
        ),
        "dashboard": ("GET", "/v1/dashboard", None),
        "meeting.manage": ("GET", "/v1/conferences?scope=all", None),
        "statistics": ("GET", "/v1/statistics/cdr", None),
        "enterprise.settings": ("GET", "/v1/oplog", None),
        "segment.resources": (
            "POST",
            "/v1/segments",
            {"name": f"probe-{secrets.token_hex(3)}", "recording_minutes": 60},
        ),
        "teams.access": ("PUT", "/v1/enterprise/teams-access", {"interop_enabled": True}),
    }
    method, path, body = probes[permission]
    return api.request(method, path, json=body).status_code


API_PERMISSIONS = [
    "conference.create",
    "member.manage",
    "role.assign",
    "dashboard",
    "meeting.manage",
    "statistics",
    "enterprise.settings",
    "segment.resources",
    "teams.access",
]


def test_the_api_enforces_the_matrix_for_every_role(admin_sa: MeetingApi) -> None:
    custom = {
        name: admin_sa.call(
            "POST", "/v1/custom-roles", json={"name": name, "permissions": sorted(chosen)}
        )["custom_role_id"]
        for name, chosen in (("customize:A", CUSTOM_A), ("customize:B", CUSTOM_B))
    }
    clients = {"administrator": admin_sa}
    for role in ("user", "operation_manager", "meeting_operator", "meeting_manager"):
        clients[role] = admin_sa.member(f"{role} person", role)
    for name, custom_id in custom.items():
        clients[name] = admin_sa.member(f"{name} person", "customize", custom_id)
    checked = 0
    for role, api in clients.items():
        me = api.call("GET", "/v1/me")
        assert set(me["permissions"]) == EXPECTED[role], role
        for permission in API_PERMISSIONS:
            status = _probe(api, permission)
            if permission in EXPECTED[role]:
                assert status in (200, 201), (role, permission, status)
            else:
                assert status == 403, (role, permission, status)
            checked += 1
    assert checked == len(clients) * len(API_PERMISSIONS)


def test_only_the_administrator_gives_roles(admin_sa: MeetingApi) -> None:
    operations = admin_sa.member("Olga Ops", "operation_manager")
    # an operation manager manages members but cannot hand out roles
    assert operations.create_account("Uma User")["role"] == "user"
    response = operations.request(
        "POST",
        "/v1/accounts",
        json={
            "username": f"x{secrets.token_hex(3)}@example.com",
            "display_name": "X",
            "password": "long enough password",
            "role": "meeting_manager",
        },
    )
    assert response.status_code == 403
    user = admin_sa.create_account("Rita Role")
    assert (
        operations.request(
            "PUT", f"/v1/accounts/{user['account_id']}/role", json={"role": "meeting_manager"}
        ).status_code
        == 403
    )
    changed = admin_sa.call(
        "PUT", f"/v1/accounts/{user['account_id']}/role", json={"role": "meeting_manager"}
    )
    assert changed["role"] == "meeting_manager"
    actions = [e["action"] for e in admin_sa.call("GET", "/v1/oplog")]
    assert "role.assign" in actions and "account.create" in actions
