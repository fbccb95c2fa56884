"""Enterprises, administrators and their sessions (account management, DM-09 and DM-10)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.clock import as_utc
from services.common.errors import Conflict, Invalid, Unauthenticated
from services.common.passwords import hash_password, verify_password
from services.common.tokens import new_token, token_digest
from services.dm.domain.ids import new_id
from services.dm.store.models import Administrator, AdminSession, Enterprise, OperationLogEntry

SESSION_LIFETIME = dt.timedelta(hours=12)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")


@dataclass(frozen=True)
class AdminIdentity:
    administrator_id: str
    enterprise_id: str
    email: str


def register_enterprise(
    session: Session,
    *,
    region: str,
    name: str,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    phone: str | None,
    now: dt.datetime,
) -> Enterprise:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise Invalid("not an email address", field="admin.email")
    if len(password) < 10:
        raise Invalid("password needs at least 10 characters", field="admin.password")
    if phone is not None and not _PHONE.match(phone):
        raise Invalid("not a phone number", field="admin.phone")
    if session.scalar(select(Administrator.id).where(Administrator.email == email)):
        raise Conflict("an administrator with this email exists", field="admin.email")
    enterprise = Enterprise(id=new_id(), name=name, region=region, created_at=now)
    admin = Administrator(
        id=new_id(),
        enterprise_id=enterprise.id,
        email=email,
        password_hash=hash_password(password),
        first_name=first_name,
        last_name=last_name,
        phone=phone,
    )
    session.add(enterprise)
    session.flush()
    session.add(admin)
    session.flush()
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=email,
        action="enterprise.register",
        enterprise_id=enterprise.id,
        target=enterprise.id,
        region=region,
    )
    return enterprise


def login(
    session: Session, email: str, password: str, now: dt.datetime
) -> tuple[str, Administrator]:
    admin = session.scalar(
        select(Administrator).where(Administrator.email == email.strip().lower())
    )
    if admin is None or not verify_password(admin.password_hash, password):
        raise Unauthenticated("wrong email or password")
    token = new_token()
    session.add(
        AdminSession(
            token_digest=token_digest(token),
            administrator_id=admin.id,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    oplog.record(
        session,
        OperationLogEntry,
        at=now,
        actor=admin.email,
        action="admin.login",
        enterprise_id=admin.enterprise_id,
    )
    return token, admin


def authenticate(session: Session, token: str | None, now: dt.datetime) -> AdminIdentity:
    if not token:
        raise Unauthenticated("an administrator session token is required")
    row = session.execute(
        select(AdminSession, Administrator)
        .join(Administrator, Administrator.id == AdminSession.administrator_id)
        .where(AdminSession.token_digest == token_digest(token))
    ).first()
    if row is None or as_utc(row[0].expires_at) <= now:
        raise Unauthenticated("session token unknown or expired")
    admin = row[1]
    return AdminIdentity(admin.id, admin.enterprise_id, admin.email)
