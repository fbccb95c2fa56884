"""Request bodies of the meeting API. Unknown fields are refused (422 naming the field), so an
account can never gain a stored field outside MT-15; settings keep unknown keys for the domain to
refuse with its own reason (an encryption switch is refused as such, MT-06)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Short = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_printable)]
Secret = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable)]
Ident = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
Pem = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_printable)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdminIn(Strict):
    username: Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_printable)]
    password: Secret | None = None
    sso: StrictBool = False
    first_name: Name
    last_name: Name
    display_name: Name
    address: Short
    company: Name


class EnterpriseIn(Strict):
    name: Name
    contract_end: dt.date | None = None
    admin: AdminIn


class LoginIn(Strict):
    username: Annotated[str, Field(min_length=1, max_length=254), AfterValidator(_printable)]
    password: Secret


class AccountIn(Strict):
    username: Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_printable)]
    display_name: Name
    password: Secret | None = None
    sso: StrictBool = False
    role: Ident = "user"
    custom_role_id: Ident | None = None


class RoleIn(Strict):
    role: Ident
    custom_role_id: Ident | None = None


class CustomRoleIn(Strict):
    name: Name
    permissions: list[Ident] = Field(max_length=32)


RecordingMinutes = Annotated[StrictInt, Field(ge=0, le=10_000_000)]


class SegmentIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
    members: list[Ident] = Field(default_factory=list, max_length=10_000)
    recording_minutes: RecordingMinutes | None = None


class SegmentResourcesIn(Strict):
    recording_minutes: RecordingMinutes | None


class SegmentMembersIn(Strict):
    members: list[Ident] = Field(max_length=10_000)


class TeamsAccessIn(Strict):
    interop_enabled: StrictBool


class RoomSystemIn(Strict):
    display_name: Name


class RoomSystemRegisterIn(Strict):
    registration_code: Secret
    csr_pem: Pem


class SettingsIn(BaseModel):
    """Any subset of the settings; other keys are kept and refused by the domain."""

    model_config = ConfigDict(extra="allow")
    chat_enabled: StrictBool | None = None
    recording_enabled: StrictBool | None = None
    live_streaming_enabled: StrictBool | None = None
    recording_view_restricted: StrictBool | None = None
    contract_end: dt.date | None = None

    def changes(self) -> dict[str, object]:
        return {**self.model_dump(exclude_unset=True), **(self.model_extra or {})}


class PlacementIn(Strict):
    participant_locations: list[Ident] = Field(min_length=1, max_length=500)


class ConferenceIn(Strict):
    title: Name
    kind: Ident = "vmr"
    password: Secret | None = None
    hidden: StrictBool = False
    locked: StrictBool = False
    escalation: StrictBool = False
    participant_locations: list[Ident] | None = Field(default=None, max_length=500)


class ConferenceUpdate(Strict):
    title: Name | None = None
    password: Secret | None = None
    hidden: StrictBool | None = None
    locked: StrictBool | None = None
    escalation: StrictBool | None = None

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True)


class ShareIn(Strict):
    account_id: Ident
