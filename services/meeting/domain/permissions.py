"""The role and permission matrix of seed 001 (MT-11), kept as data in this one place.

Every API request is checked with `allowed()` against this table. Customize roles are any subset
of CUSTOMIZABLE, defined by the administrator; only a holder of ROLE_ASSIGN assigns roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from services.common.errors import Forbidden, Invalid

# In-meeting permissions of the User role (seed 001, "As a user, you can").
CALL = "call.place_receive"
SELF_MEDIA = "media.self_disable"
CONFERENCE_CREATE = "conference.create"
CONFERENCE_PASSWORD = "conference.password"
CONFERENCE_HIDE = "conference.hide"
CONFERENCE_PARTICIPANTS = "conference.participants"
CONFERENCE_MUTE = "conference.mute"
CHAT = "chat"
LIVE_STREAM = "live_stream"
RECORD = "record"

# Management-console permissions of the administrative roles.
ROLE_ASSIGN = "role.assign"
DASHBOARD = "dashboard"
MEMBER_MANAGE = "member.manage"
MEETING_MANAGE = "meeting.manage"
VMR_MANAGE = "vmr.manage"
FILES = "files.collaboration"
STATISTICS = "statistics"
ENTERPRISE_SETTINGS = "enterprise.settings"
SEGMENT_RESOURCES = "segment.resources"
TEAMS_ACCESS = "teams.access"

# permission -> the seed's wording
PERMISSIONS: Final[Mapping[str, str]] = {
    CALL: "Place and receive calls",
    SELF_MEDIA: "Disable your audio or video",
    CONFERENCE_CREATE: "Create and own a conference",
    CONFERENCE_PASSWORD: "Set or change the password for the conference you create",
    CONFERENCE_HIDE: "Hide your meetings from the directory",
    CONFERENCE_PARTICIPANTS: "Add or remove individual or all participants in the conference you create",
    CONFERENCE_MUTE: "Mute individual or all participants in the conference you create",
    CHAT: "Chat with users or groups (if the administrator has enabled chat)",
    LIVE_STREAM: "Live stream the conference you create (if enabled)",
    RECORD: "Record the conference (if the administrator has enabled recording)",
    ROLE_ASSIGN: "Role assignment",
    DASHBOARD: "Dashboard",
    MEMBER_MANAGE: "Member Management (users, room systems, external contacts)",
    MEETING_MANAGE: "Meeting Management",
    VMR_MANAGE: "VMR Management",
    FILES: "Collaboration Files (recordings, shared record and recycle bin)",
    STATISTICS: "Statistics (reports, CDR, billing)",
    ENTERPRISE_SETTINGS: "Enterprise Settings (enterprise profile, meeting settings, "
    "recording settings, operation log)",
    SEGMENT_RESOURCES: "Segment Resources",
    TEAMS_ACCESS: "Teams Access",
}

USER = "user"
OPERATION_MANAGER = "operation_manager"
MEETING_OPERATOR = "meeting_operator"
MEETING_MANAGER = "meeting_manager"
CUSTOMIZE = "customize"
ADMINISTRATOR = "administrator"

# Permissions an administrator may put into a Customize role (seed 001, "Customize").
CUSTOMIZABLE: Final[frozenset[str]] = frozenset(
    {
        DASHBOARD,
        MEMBER_MANAGE,
        MEETING_MANAGE,
        VMR_MANAGE,
        FILES,
        STATISTICS,
        ENTERPRISE_SETTINGS,
        SEGMENT_RESOURCES,
        TEAMS_ACCESS,
    }
)

# role -> exactly the permissions seed 001 lists for it. Customize has none of its own: its
# permissions come from the administrator-defined custom role.
ROLES: Final[Mapping[str, frozenset[str]]] = {
    USER: frozenset(
        {
            CALL,
            SELF_MEDIA,
            CONFERENCE_CREATE,
            CONFERENCE_PASSWORD,
            CONFERENCE_HIDE,
            CONFERENCE_PARTICIPANTS,
            CONFERENCE_MUTE,
            CHAT,
            LIVE_STREAM,
            RECORD,
        }
    ),
    OPERATION_MANAGER: frozenset(
        {DASHBOARD, MEMBER_MANAGE, FILES, STATISTICS, ENTERPRISE_SETTINGS, TEAMS_ACCESS}
    ),
    MEETING_OPERATOR: frozenset({DASHBOARD, MEETING_MANAGE, VMR_MANAGE}),
    MEETING_MANAGER: frozenset({DASHBOARD, MEETING_MANAGE, VMR_MANAGE, FILES, STATISTICS}),
    CUSTOMIZE: frozenset(),
    ADMINISTRATOR: frozenset({ROLE_ASSIGN} | CUSTOMIZABLE),
}

# Room systems are not a role: they place and receive calls and control their own media.
ROOM_SYSTEM: Final[frozenset[str]] = frozenset({CALL, SELF_MEDIA})


def validate_role(role: str, field: str = "role") -> str:
    if role not in ROLES:
        raise Invalid(f"unknown role; one of {', '.join(ROLES)}", field=field)
    return role


def validate_custom_permissions(
    permissions: Iterable[str], field: str = "permissions"
) -> frozenset[str]:
    chosen = frozenset(permissions)
    for index, permission in enumerate(permissions):
        if permission not in CUSTOMIZABLE:
            raise Invalid(
                f"not a customizable permission; one of {', '.join(sorted(CUSTOMIZABLE))}",
                field=f"{field}.{index}",
            )
    return chosen


def permissions_of(
    role: str, custom: Iterable[str] = (), *, room_system: bool = False
) -> frozenset[str]:
    """The permissions an account holds: its role's set, or its custom role's subset."""
    if room_system:
        return ROOM_SYSTEM
    if role == CUSTOMIZE:
        return frozenset(custom) & CUSTOMIZABLE
    return ROLES.get(role, frozenset())


def allowed(granted: frozenset[str], permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(permission)
    return permission in granted


def require(granted: frozenset[str], permission: str) -> None:
    if not allowed(granted, permission):
        raise Forbidden(f"your role lacks the permission {permission!r}", field=None)


def matrix() -> dict[str, list[str]]:
    return {role: sorted(perms) for role, perms in ROLES.items()}
