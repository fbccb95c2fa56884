"""The meeting store. Account columns are exactly the MT-15 fields; call records hold metadata only
(times, account IDs, region, encrypted-or-not per leg, MT-13). Chat has no table: it is never stored
(MT-18)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import NAMING_CONVENTION, Timestamp
from services.common.oplog import OperationLogMixin


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Enterprise(Base):
    """An enterprise and its settings (MT-17). There is no encryption column: it cannot be off."""

    __tablename__ = "enterprises"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    contract_end: Mapped[dt.date | None] = mapped_column(Date)
    chat_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    recording_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    live_streaming_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    recording_view_restricted: Mapped[bool] = mapped_column(Boolean, default=True)
    # Teams access: may the region's interop gateway (SIP, H.323) bring third-party room systems
    # into this enterprise's conferences
    interop_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class CustomRole(Base):
    """A Customize role: an administrator-chosen subset of the customizable permissions."""

    __tablename__ = "custom_roles"
    __table_args__ = (UniqueConstraint("enterprise_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    permissions: Mapped[list[str]] = mapped_column(JSON)


class Account(Base):
    """An administrator, a member with one of the other roles, or a room system (MT-15 fields).

    first_name, last_name, address and company exist only for the administrator; the password only
    as an Argon2 hash and only for non-SSO accounts."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # member | room_system
    role: Mapped[str] = mapped_column(String(32))
    custom_role_id: Mapped[str | None] = mapped_column(ForeignKey("custom_roles.id"))
    username: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    sso: Mapped[bool] = mapped_column(Boolean, default=False)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(300))
    company: Mapped[str | None] = mapped_column(String(200))
    access: Mapped[str] = mapped_column(String(16), default="granted")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    # room systems: the one-time registration code (digest) and the issued certificate's serial
    registration_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    cert_serial: Mapped[str | None] = mapped_column(String(64), unique=True)


class AccountSession(Base):
    __tablename__ = "account_sessions"
    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class Conference(Base):
    """A permanent virtual meeting room (vmr) or a one-off conference (deleted when it ends)."""

    __tablename__ = "conferences"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    region: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class CallRecord(Base):
    """CDR: one conference session. Metadata only, never media or chat (MT-13)."""

    __tablename__ = "call_records"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    conference_id: Mapped[str] = mapped_column(String(40), index=True)  # survives one-off deletion
    region: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    ended_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class CallLeg(Base):
    """One participant's leg of a call: account, times, and whether it was encrypted."""

    __tablename__ = "call_legs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("call_records.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(32), index=True)
    joined_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    left_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    encrypted: Mapped[bool] = mapped_column(Boolean)
    transport: Mapped[str] = mapped_column(String(16))


class Recording(Base):
    """A user-started recording; the encrypted file lives in this region's storage only (MT-16)."""

    __tablename__ = "recordings"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    conference_id: Mapped[str] = mapped_column(String(40), index=True)
    region: Mapped[str] = mapped_column(String(8))
    recorder_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    participant_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    shared_with: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    file_name: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)


class Segment(Base):
    """A group of an enterprise's accounts and the resources an administrator gave it: a recording
    quota in minutes for its members together (None: no quota)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("enterprise_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    recording_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class SegmentMember(Base):
    """An account's segment: one at most (the account is the key)."""

    __tablename__ = "segment_members"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id"), index=True)


class OperationLogEntry(OperationLogMixin, Base):
    __tablename__ = "operation_log"


# -- a replicated region (PostgreSQL and a bus): what every replica must agree on ---------------


class RelayRow(Base):
    """A relay of the region, written and kept fresh by the relay itself (its heartbeat)."""

    __tablename__ = "relays"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_address: Mapped[str] = mapped_column(String(200))
    control_url: Mapped[str] = mapped_column(String(300))
    ca_file: Mapped[str] = mapped_column(String(500))
    capacity: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int] = mapped_column(Integer)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    lost: Mapped[bool] = mapped_column(Boolean, default=False)


class RelayPlacement(Base):
    """The one relay a live conference's media is on."""

    __tablename__ = "relay_placements"
    conference_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    relay_name: Mapped[str] = mapped_column(String(64))
    moves: Mapped[int] = mapped_column(Integer, default=0)


class RelayMember(Base):
    """A participant admitted on its conference's relay (who a move must carry along)."""

    __tablename__ = "relay_members"
    participant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conference_id: Mapped[str] = mapped_column(String(32), index=True)


class ConferenceOwner(Base):
    """The replica that runs a live conference's session, its lease, and the session's snapshot
    (everything but the chat) to rebuild it from when another replica takes over."""

    __tablename__ = "conference_owners"
    conference_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime] = mapped_column(Timestamp)
    snapshot: Mapped[dict[str, object]] = mapped_column(JSON)
    resume_tokens: Mapped[dict[str, object]] = mapped_column(JSON)
