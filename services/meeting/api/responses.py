"""Response bodies of the meeting API, so the OpenAPI document describes every answer.

They describe the JSON the domain's views return, key for key: unknown keys are refused (a view
that grows a key fails its tests instead of losing the key), and routes whose views leave keys out
(an administrator's profile fields) answer with `response_model_exclude_unset`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Minutes = int | float  # a sum that is 0 (an int) before the first leg


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- public -------------------------------------------------------------------------------------


class Health(Out):
    service: str
    region: str
    status: str
    live_conferences: int


class PermissionMatrix(Out):
    permissions: dict[str, str]
    roles: dict[str, list[str]]
    customizable: list[str]
    room_system: list[str]


class PlacementOut(Out):
    region: str
    mean_latency_ms: float
    max_latency_ms: float
    candidates: dict[str, float]


class EnterpriseRegistered(Out):
    enterprise_id: str
    administrator_id: str
    region: str


class LoginOut(Out):
    token: str
    account_id: str
    enterprise_id: str
    role: str
    expires_at: str


class RoomSystemRegistered(Out):
    account_id: str
    certificate_pem: str
    ca_pem: str


class LoggedOut(Out):
    logged_out: bool


# -- accounts -----------------------------------------------------------------------------------


class AccountOut(Out):
    account_id: str
    enterprise_id: str
    kind: str
    role: str
    custom_role_id: str | None
    username: str
    display_name: str
    sso: bool
    access: str
    # an administrator's own profile only (left out for everyone else)
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    company: str | None = None


class Me(AccountOut):
    permissions: list[str]


class CustomRoleOut(Out):
    custom_role_id: str
    name: str
    permissions: list[str]


class SegmentOut(Out):
    segment_id: str
    name: str
    members: list[str]
    recording_minutes: int | None
    recorded_minutes: float


class TeamsAccessOut(Out):
    interop_enabled: bool


class RoomSystemCreated(Out):
    account_id: str
    registration_code: str


class SettingsOut(Out):
    chat_enabled: bool
    recording_enabled: bool
    live_streaming_enabled: bool
    recording_view_restricted: bool
    contract_end: str | None


# -- conferences and recordings -----------------------------------------------------------------


class ConferenceOut(Out):
    conference_id: str
    region: str
    title: str
    kind: str
    owner_id: str
    hidden: bool
    locked: bool
    escalation: bool
    has_password: bool
    state: str
    created_at: str


class ConferenceEnded(Out):
    ended: bool
    was_live: bool
    deleted: bool


class Deleted(Out):
    deleted: bool


class RecordingOut(Out):
    recording_id: str
    conference_id: str
    region: str
    recorder_id: str
    started_at: str
    stopped_at: str | None
    size: int
    shared_with: list[str]


# -- statistics and the operation log -----------------------------------------------------------


class CdrLeg(Out):
    account_id: str
    joined_at: str
    left_at: str | None
    encrypted: bool
    transport: str


class CdrRecord(Out):
    cdr_id: str
    conference_id: str
    region: str
    started_at: str
    ended_at: str | None
    legs: list[CdrLeg]


class Report(Out):
    conferences: int
    legs: int
    encrypted_legs: int
    participant_minutes: Minutes


class Billing(Out):
    participant_minutes: Minutes
    by_month: dict[str, float]


class Dashboard(Out):
    accounts: int
    room_systems: int
    conferences: int
    live_conferences: int
    recordings: int


class OplogEntry(Out):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
