"""The DM store. Every column belongs to a DM-09 category: account management, device management,
remote diagnosis or resource management (plus the keys and timestamps that tie them together)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import NAMING_CONVENTION, Timestamp
from services.common.oplog import OperationLogMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Enterprise(Base):
    __tablename__ = "enterprises"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class Administrator(Base):
    """Account management fields only (DM-09); the password only as an Argon2 hash (DM-10)."""

    __tablename__ = "administrators"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))


class AdminSession(Base):
    __tablename__ = "admin_sessions"
    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    administrator_id: Mapped[str] = mapped_column(ForeignKey("administrators.id"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class Site(Base):
    """Resource management: site, server ID, geolocation and time zone."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("enterprise_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    server_id: Mapped[str | None] = mapped_column(String(64))


class Device(Base):
    """Device management fields: identity, versions, status and network identifiers.

    `state` is the lifecycle (docs/dm-api.md): deployed -> enrolled -> revoked (un-deployed) or
    reset (factory reset), and back to deployed when an administrator deploys it again.
    `cert_serial` is the certificate in use; `renewed_cert_serial` a renewal issued and not yet
    used (the first request made with it revokes `cert_serial` and takes its place)."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    serial_number: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(128))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="deployed")
    deployed_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    cert_serial: Mapped[str | None] = mapped_column(String(64), unique=True)
    cert_not_after: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    renewed_cert_serial: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    renewed_not_after: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_seen: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    reported_status: Mapped[str | None] = mapped_column(String(16))
    software_version: Mapped[str | None] = mapped_column(String(64))
    firmware_version: Mapped[str | None] = mapped_column(String(64))
    server_address: Mapped[str | None] = mapped_column(String(128))
    configuration_version: Mapped[str | None] = mapped_column(String(64))
    network_id: Mapped[str | None] = mapped_column(String(128))
    network_type: Mapped[str | None] = mapped_column(String(16))
    ipv4_address: Mapped[str | None] = mapped_column(String(15))
    ipv6_address: Mapped[str | None] = mapped_column(String(45))


class TelemetryReading(Base):
    """One accepted telemetry report: only allowlisted device-management fields.

    `report_id` is the id the device chose for the report (an envelope field, not telemetry
    data): a retry of the same report stores nothing twice."""

    __tablename__ = "telemetry"
    __table_args__ = (
        Index("uq_telemetry_device_id_report_id", "device_id", "report_id", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(Timestamp, index=True)
    fields: Mapped[dict[str, str]] = mapped_column(JSON)
    report_id: Mapped[str | None] = mapped_column(String(64))


OPEN_ALERT = text("state IN ('active', 'acknowledged')")


class Alert(Base):
    """A health alert. At most one is open (active or acknowledged) per device, rule and
    component: a partial unique index, so racing evaluators cannot raise one twice."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_condition",
            "device_id",
            "rule",
            func.coalesce(text("component"), ""),
            unique=True,
            postgresql_where=OPEN_ALERT,
            sqlite_where=OPEN_ALERT,
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    component: Mapped[str | None] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    raised_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    detail: Mapped[str] = mapped_column(Text, default="")


class OperationLogEntry(OperationLogMixin, Base):
    __tablename__ = "operation_log"


class DeviceCommand(Base):
    """A server-to-device command, delivered over the device's own outbound WSS connection.

    Commands wait here until the device is connected; a device that was offline receives its
    pending commands when it reconnects (MT-12: nothing ever connects into a device)."""

    __tablename__ = "device_commands"
    __table_args__ = (
        # one firmware command per rollout, device and operation (NULLs of other kinds differ)
        Index(
            "uq_device_commands_rollout_device_operation",
            "rollout_id",
            "device_id",
            "operation",
            unique=True,
        ),
        Index(
            "ix_device_commands_undelivered",
            "device_id",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    acked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    result: Mapped[dict[str, object] | None] = mapped_column(JSON)
    rollout_id: Mapped[str | None] = mapped_column(String(32))  # firmware commands only
    operation: Mapped[str | None] = mapped_column(String(16))  # install or rollback


class ConfigProfile(Base):
    """A versioned key/value configuration set applied by site, model or tag (DM-13)."""

    __tablename__ = "config_profiles"
    __table_args__ = (UniqueConstraint("enterprise_id", "name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, object]] = mapped_column(JSON)
    target: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class DiagnosticBundle(Base):
    """Remote diagnosis: device ID, MAC, IP and log files, kept in the region's store directory."""

    __tablename__ = "diagnostic_bundles"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, index=True)
    size: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(64))


class FirmwareImage(Base):
    """Resource management: a firmware image (its name is model and version) in the catalogue.

    The signed package lives in the region's object store under `blob_key`; the row keeps what
    the catalogue shows and what a rollout checks."""

    __tablename__ = "firmware_images"
    __table_args__ = (UniqueConstraint("enterprise_id", "model", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    model: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class FirmwareDownload(Base):
    """One device's download of one image: the per-download AES-GCM key, handed to the device
    over its mTLS command channel, and wiped once the device has reported the update."""

    __tablename__ = "firmware_downloads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("firmware_images.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    rollout_id: Mapped[str | None] = mapped_column(ForeignKey("rollouts.id"), index=True)
    key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    downloaded_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class Rollout(Base):
    """A staged firmware rollout: its plan, and the state its planner reached."""

    __tablename__ = "rollouts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("firmware_images.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    plan: Mapped[dict[str, object]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class RolloutEvent(Base):
    """The journal of a rollout: every event its planner accepted, in order. Replaying it
    rebuilds the planner after a restart (the planner is deterministic)."""

    __tablename__ = "rollout_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    body: Mapped[dict[str, object]] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(Timestamp)
