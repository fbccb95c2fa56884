"""Request bodies and response models of the DM API. Unknown fields are refused (extra="forbid")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.dm.domain.rollout_planner import RolloutState


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdminAccount(Strict):
    email: str = Field(max_length=254)
    password: str = Field(min_length=1, max_length=256)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)


class EnterpriseIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    admin: AdminAccount


class LoginIn(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class SiteIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field(min_length=1, max_length=64)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    server_id: str | None = Field(default=None, max_length=64)


class DeviceIn(Strict):
    mac: str = Field(max_length=17)
    serial_number: str = Field(min_length=1, max_length=64)
    model: str = Field(max_length=40)
    site_id: str = Field(max_length=32)
    name: str | None = Field(default=None, max_length=128)
    tags: list[str] = Field(default_factory=list, max_length=20)


class EnrollIn(Strict):
    model: str = Field(max_length=40)
    csr_pem: str = Field(max_length=8192)


class ConfigProfileIn(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 ._-]+$")
    values: dict[str, Any]
    target: dict[str, str]


# -- responses ------------------------------------------------------------------------------------
# The exact JSON each route answers. Unknown fields are refused here too, so a field the domain
# adds without the model fails the tests instead of silently leaving the answer.


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthOut(Out):
    service: Literal["dm"]
    region: str
    status: Literal["ok"]
    devices: int = Field(description="devices the region holds")
    connected: int = Field(description="devices whose command channel is open on this process")
    leader: bool = Field(
        description="whether this process holds the region's leader lease (runs the periodic jobs)"
    )


class EnterpriseOut(Out):
    enterprise_id: str
    region: str


class LoginOut(Out):
    token: str = Field(description="the bearer token of the session")
    enterprise_id: str


class OperationLogEntryOut(Out):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


class SiteOut(Out):
    site_id: str
    name: str
    time_zone: str
    latitude: float | None
    longitude: float | None
    server_id: str | None


class DeviceOut(Out):
    device_id: str
    mac: str
    serial_number: str
    model: str
    name: str | None
    site_id: str
    tags: list[str]
    status: Literal["deployed", "online", "offline", "revoked", "reset"]
    enrolled: bool
    last_seen: str | None
    software_version: str | None
    firmware_version: str | None
    configuration_version: str | None
    network_type: str | None
    ipv4_address: str | None


class UndeployedOut(Out):
    device_id: str
    status: Literal["revoked"]


class EnrollOut(Out):
    device_id: str
    certificate_pem: str
    ca_pem: str
    not_after: str  # ISO 8601: when the certificate ends (the device renews it before)


class RenewIn(Strict):
    csr_pem: str = Field(max_length=8192)


class RenewOut(Out):
    certificate_pem: str
    ca_pem: str
    not_after: str


class RemoteActionIn(Strict):
    """A remote action for one device (the path names it) or many: `device_ids`, or a `target`
    (site_id, model, tag) as a configuration profile has."""

    action: str = Field(max_length=32)
    level: str | None = Field(default=None, max_length=16)
    device_ids: list[str] | None = Field(default=None, max_length=10_000)
    target: dict[str, str] | None = None


class RemoteActionOut(Out):
    action: str
    devices: int
    delivered_now: int
    commands: dict[str, int]  # device id -> command id


class HeartbeatOut(Out):
    next_heartbeat_s: int


class StoredOut(Out):
    stored: Literal[True]


class RecordedOut(Out):
    recorded: Literal[True]


class PingOut(Out):
    ok: Literal[True]


class AlertOut(Out):
    alert_id: int
    device_id: str
    rule: str
    component: str | None
    severity: str
    state: Literal["active", "acknowledged", "cleared"]
    raised_at: str
    acknowledged_at: str | None
    cleared_at: str | None
    detail: str


class ConfigProfileOut(Out):
    profile_id: int
    name: str
    version: int
    values: dict[str, Any]
    target: dict[str, str]


class ConfigPushOut(Out):
    devices: int = Field(description="devices the profile targets")
    delivered_now: int = Field(description="of those, devices the command reached at once")
    device_ids: list[str]


class ConfigPushStatusOut(Out):
    version: str = Field(description="the profile's newest version, name@N")
    commands: int = Field(description="config commands of that version queued (every push)")
    devices: int = Field(description="devices they went to")
    delivered: int
    acknowledged: int = Field(description="acknowledged by the device")
    applied: int
    refused: int
    reasons: dict[str, int] = Field(description="'key: reason' the devices gave -> how many")


class DriftOut(Out):
    device_id: str
    profile: str
    wanted: str
    applied: str | None


class DiagnosticsRequestedOut(Out):
    command_id: int
    delivered_now: bool


class DiagnosticBundleOut(Out):
    bundle_id: str
    device_id: str
    size: int
    created_at: str


class DiagnosticBundleContent(Out):
    """A stored bundle as the device uploaded it (DM-09 remote-diagnosis fields and logs)."""

    device_id: str
    mac: str
    ip_address: str
    logs: dict[str, str]
    collected_at: str


class BundleUploadedOut(Out):
    bundle_id: str


class ReleaseKeyOut(Out):
    algorithm: Literal["Ed25519"]
    public_key_pem: str


class FirmwareImageOut(Out):
    image_id: str
    model: str
    version: str
    size: int
    sha256: str
    signature: Literal["Ed25519"]


class WaveOut(Out):
    wave: int
    state: Literal["pending", "running", "done"]
    size: int
    waiting: int
    in_progress: int
    updated: int
    failed: int
    rolled_back: int
    cancelled: int
    percent_updated: float


class RolloutTotalsOut(Out):
    size: int
    waiting: int
    in_progress: int
    updated: int
    failed: int


class RolloutOut(Out):
    rollout_id: str
    name: str
    image: FirmwareImageOut
    state: RolloutState
    reason: str | None
    created_at: str
    started_at: str | None
    updated_at: str
    plan: dict[str, Any]
    waves: list[WaveOut]
    totals: RolloutTotalsOut
