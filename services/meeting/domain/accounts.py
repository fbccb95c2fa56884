"""Enterprises, accounts, roles, room systems and sessions (MT-10, MT-11, MT-15, MT-19).

Stored fields are exactly those of MT-15; passwords only as Argon2 hashes and only for non-SSO
accounts. Access is checked on every request, so a revocation takes effect on the very next one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.common import oplog
from services.common.ca import RegionCA, cert_pem, cert_serial_hex
from services.common.clock import as_utc
from services.common.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from services.common.passwords import hash_password, verify_password
from services.common.tokens import new_token, token_digest
from services.meeting.domain import permissions as perms
from services.meeting.domain.ids import is_plain_id, new_id
from services.meeting.store.models import (
    Account,
    AccountSession,
    CustomRole,
    Enterprise,
    OperationLogEntry,
)

SESSION_LIFETIME = dt.timedelta(hours=12)
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")

MEMBER = "member"
ROOM_SYSTEM = "room_system"
GRANTED = "granted"
REVOKED = "revoked"


@dataclass(frozen=True)
class Identity:
    account_id: str
    enterprise_id: str
    username: str
    display_name: str
    role: str
    kind: str
    permissions: frozenset[str]

    def require(self, permission: str) -> None:
        perms.require(self.permissions, permission)

    def can(self, permission: str) -> bool:
        return perms.allowed(self.permissions, permission)


def log(session: Session, actor: str, action: str, **kwargs: Any) -> None:
    oplog.record(session, OperationLogEntry, actor=actor, action=action, **kwargs)


def _text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise Invalid(f"must be 1 to {limit} characters", field=field)
    return value


def _password(password: str | None, sso: bool, field: str) -> str | None:
    if sso:
        if password is not None:
            raise Invalid("SSO accounts have no password", field=field)
        return None
    if password is None or len(password) < MIN_PASSWORD:
        raise Invalid(f"password needs at least {MIN_PASSWORD} characters", field=field)
    return hash_password(password)


def _username_free(session: Session, username: str, field: str) -> None:
    if session.scalar(select(Account.id).where(Account.username == username)):
        raise Conflict("an account with this username exists", field=field)


def register_enterprise(
    session: Session,
    *,
    region: str,
    name: str,
    contract_end: dt.date | None,
    username: str,
    password: str | None,
    sso: bool,
    first_name: str,
    last_name: str,
    display_name: str,
    address: str,
    company: str,
    now: dt.datetime,
) -> tuple[Enterprise, Account]:
    """A new enterprise with its administrator (username: email address or phone number)."""
    username = username.strip().lower()
    if not (_EMAIL.match(username) or _PHONE.match(username)):
        raise Invalid("the username must be an email address or a phone number", "admin.username")
    enterprise = Enterprise(
        id=new_id(),
        name=_text(name, "name", 200),
        region=region,
        created_at=now,
        contract_end=contract_end,
        chat_enabled=True,
        recording_enabled=True,
        live_streaming_enabled=True,
        recording_view_restricted=True,
    )
    admin = Account(
        id=new_id(),
        enterprise_id=enterprise.id,
        kind=MEMBER,
        role=perms.ADMINISTRATOR,
        username=username,
        display_name=_text(display_name, "admin.display_name", 200),
        password_hash=_password(password, sso, "admin.password"),
        sso=sso,
        first_name=_text(first_name, "admin.first_name", 100),
        last_name=_text(last_name, "admin.last_name", 100),
        address=_text(address, "admin.address", 300),
        company=_text(company, "admin.company", 200),
        access=GRANTED,
        created_at=now,
    )
    _username_free(session, username, "admin.username")
    session.add(enterprise)
    session.flush()
    session.add(admin)
    session.flush()
    log(
        session,
        username,
        "enterprise.register",
        at=now,
        enterprise_id=enterprise.id,
        target=enterprise.id,
        region=region,
    )
    return enterprise, admin


def custom_permissions(session: Session, account: Account) -> frozenset[str]:
    if account.custom_role_id is None:
        return frozenset()
    role = session.get(CustomRole, account.custom_role_id)
    return frozenset(role.permissions) if role else frozenset()


def identity_of(session: Session, account: Account) -> Identity:
    granted = perms.permissions_of(
        account.role,
        custom_permissions(session, account),
        room_system=account.kind == ROOM_SYSTEM,
    )
    return Identity(
        account.id,
        account.enterprise_id,
        account.username,
        account.display_name,
        account.role,
        account.kind,
        granted,
    )


def login(
    session: Session, username: str, password: str, now: dt.datetime
) -> tuple[str, Account, dt.datetime]:
    account = session.scalar(select(Account).where(Account.username == username.strip().lower()))
    if (
        account is None
        or account.password_hash is None
        or not verify_password(account.password_hash, password)
    ):
        raise Unauthenticated("wrong username or password", field="username")
    if account.access != GRANTED:
        raise Unauthenticated("access revoked", field="username")
    token = new_token()
    expires = now + SESSION_LIFETIME
    session.add(
        AccountSession(token_digest=token_digest(token), account_id=account.id, expires_at=expires)
    )
    return token, account, expires


def logout(session: Session, token: str | None) -> None:
    if token:
        session.execute(
            delete(AccountSession).where(AccountSession.token_digest == token_digest(token))
        )


def authenticate(
    session: Session, token: str | None, cert_pem_text: str | None, now: dt.datetime
) -> Identity:
    """The caller behind a session token or a room-system client certificate, checked now."""
    account: Account | None = None
    if token:
        row = session.execute(
            select(AccountSession, Account)
            .join(Account, Account.id == AccountSession.account_id)
            .where(AccountSession.token_digest == token_digest(token))
        ).first()
        if row is None or as_utc(row[0].expires_at) <= now:
            raise Unauthenticated("session token unknown or expired")
        account = row[1]
    elif cert_pem_text:
        serial = cert_serial_hex(cert_pem_text.encode())
        account = session.scalar(select(Account).where(Account.cert_serial == serial))
        if account is None:
            raise Unauthenticated("unknown client certificate")
    else:
        raise Unauthenticated("a session token or a room-system certificate is required")
    if account.access != GRANTED:
        raise Unauthenticated("access revoked")
    return identity_of(session, account)


def _account_in(session: Session, enterprise_id: str, account_id: str) -> Account:
    account = session.get(Account, account_id) if is_plain_id(account_id) else None
    if account is None or account.enterprise_id != enterprise_id:
        raise NotFound("no such account in your enterprise", field="account_id")
    return account


def _custom_role_in(session: Session, enterprise_id: str, custom_role_id: str | None) -> CustomRole:
    role = (
        session.get(CustomRole, custom_role_id)
        if custom_role_id and is_plain_id(custom_role_id)
        else None
    )
    if role is None or role.enterprise_id != enterprise_id:
        raise Invalid(
            "a customize role needs a custom_role_id of your enterprise", "custom_role_id"
        )
    return role


def create_account(
    session: Session,
    actor: Identity,
    *,
    username: str,
    display_name: str,
    password: str | None,
    sso: bool,
    role: str,
    custom_role_id: str | None,
    now: dt.datetime,
) -> Account:
    actor.require(perms.MEMBER_MANAGE)
    perms.validate_role(role)
    if role != perms.USER:
        actor.require(perms.ROLE_ASSIGN)  # only the administrator assigns roles
    if role == perms.ADMINISTRATOR:
        raise Forbidden("an enterprise has one administrator", field="role")
    if role == perms.CUSTOMIZE:
        _custom_role_in(session, actor.enterprise_id, custom_role_id)
    elif custom_role_id is not None:
        raise Invalid("custom_role_id is only for the customize role", field="custom_role_id")
    username = username.strip().lower()
    if not _EMAIL.match(username):
        raise Invalid("the username must be an email address", field="username")
    account = Account(
        id=new_id(),
        enterprise_id=actor.enterprise_id,
        kind=MEMBER,
        role=role,
        custom_role_id=custom_role_id,
        username=username,
        display_name=_text(display_name, "display_name", 200),
        password_hash=_password(password, sso, "password"),
        sso=sso,
        access=GRANTED,
        created_at=now,
    )
    _username_free(session, username, "username")
    session.add(account)
    session.flush()
    log(
        session,
        actor.username,
        "account.create",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=account.id,
        role=role,
    )
    return account


def list_accounts(session: Session, actor: Identity) -> Sequence[Account]:
    actor.require(perms.MEMBER_MANAGE)
    return session.scalars(
        select(Account)
        .where(Account.enterprise_id == actor.enterprise_id)
        .order_by(Account.created_at)
    ).all()


def assign_role(
    session: Session,
    actor: Identity,
    account_id: str,
    role: str,
    custom_role_id: str | None,
    now: dt.datetime,
) -> Account:
    actor.require(perms.ROLE_ASSIGN)
    perms.validate_role(role)
    account = _account_in(session, actor.enterprise_id, account_id)
    if account.kind == ROOM_SYSTEM:
        raise Invalid("room systems have no role", field="account_id")
    if role == perms.ADMINISTRATOR or account.role == perms.ADMINISTRATOR:
        raise Forbidden("the administrator role is not reassigned", field="role")
    if role == perms.CUSTOMIZE:
        _custom_role_in(session, actor.enterprise_id, custom_role_id)
    elif custom_role_id is not None:
        raise Invalid("custom_role_id is only for the customize role", field="custom_role_id")
    account.role, account.custom_role_id = role, custom_role_id
    log(
        session,
        actor.username,
        "role.assign",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=account.id,
        role=role,
        custom_role_id=custom_role_id,
    )
    return account


def set_access(
    session: Session, actor: Identity, account_id: str, access: str, now: dt.datetime
) -> Account:
    """Grant or revoke an account; revoking drops its sessions at once."""
    actor.require(perms.MEMBER_MANAGE)
    account = _account_in(session, actor.enterprise_id, account_id)
    if account.role == perms.ADMINISTRATOR:
        raise Forbidden("the administrator's access cannot be revoked", field="account_id")
    account.access = access
    if access == REVOKED:
        session.execute(delete(AccountSession).where(AccountSession.account_id == account.id))
    log(
        session,
        actor.username,
        f"account.{'revoke' if access == REVOKED else 'grant'}",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=account.id,
    )
    return account


def create_custom_role(
    session: Session, actor: Identity, name: str, permissions: list[str], now: dt.datetime
) -> CustomRole:
    actor.require(perms.ROLE_ASSIGN)
    chosen = perms.validate_custom_permissions(permissions)
    name = _text(name, "name", 100)
    if session.scalar(
        select(CustomRole.id).where(
            CustomRole.enterprise_id == actor.enterprise_id, CustomRole.name == name
        )
    ):
        raise Conflict("a custom role with this name exists", field="name")
    role = CustomRole(
        id=new_id(), enterprise_id=actor.enterprise_id, name=name, permissions=sorted(chosen)
    )
    session.add(role)
    session.flush()
    log(
        session,
        actor.username,
        "custom_role.create",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=role.id,
        permissions=sorted(chosen),
    )
    return role


def list_custom_roles(session: Session, actor: Identity) -> Sequence[CustomRole]:
    if not (actor.can(perms.ROLE_ASSIGN) or actor.can(perms.MEMBER_MANAGE)):
        actor.require(perms.ROLE_ASSIGN)
    return session.scalars(
        select(CustomRole).where(CustomRole.enterprise_id == actor.enterprise_id)
    ).all()


def create_room_system(
    session: Session, actor: Identity, display_name: str, now: dt.datetime
) -> tuple[Account, str]:
    """A room system account and its one-time registration code."""
    actor.require(perms.MEMBER_MANAGE)
    code = new_token()
    account = Account(
        id=new_id(),
        enterprise_id=actor.enterprise_id,
        kind=ROOM_SYSTEM,
        role="room_system",
        username=f"room-{new_id()}",
        display_name=_text(display_name, "display_name", 200),
        password_hash=None,
        sso=False,
        access=GRANTED,
        created_at=now,
        registration_digest=token_digest(code),
    )
    session.add(account)
    session.flush()
    log(
        session,
        actor.username,
        "room_system.create",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=account.id,
    )
    return account, code


def register_room_system(
    session: Session, ca: RegionCA, code: str, csr_pem: str, now: dt.datetime
) -> tuple[Account, str]:
    """Sign a room system's CSR against its one-time code; returns the certificate PEM."""
    account = session.scalar(
        select(Account).where(Account.registration_digest == token_digest(code))
    )
    if account is None or account.access != GRANTED:
        raise Forbidden("unknown or used registration code", field="registration_code")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise Invalid("not a PEM certificate signing request", field="csr_pem") from None
    if not csr.is_signature_valid:
        raise Invalid("the CSR signature does not verify", field="csr_pem")
    try:
        cert = ca.sign_client_csr(csr, now)
    except ValueError as exc:
        raise Invalid(str(exc), field="csr_pem") from None
    pem = cert_pem(cert)
    account.cert_serial = cert_serial_hex(pem)
    account.registration_digest = None
    log(
        session,
        account.username,
        "room_system.register",
        at=now,
        enterprise_id=account.enterprise_id,
        target=account.id,
    )
    return account, pem.decode()


def account_view(account: Account) -> dict[str, Any]:
    view: dict[str, Any] = {
        "account_id": account.id,
        "enterprise_id": account.enterprise_id,
        "kind": account.kind,
        "role": account.role,
        "custom_role_id": account.custom_role_id,
        "username": account.username,
        "display_name": account.display_name,
        "sso": account.sso,
        "access": account.access,
    }
    if account.role == perms.ADMINISTRATOR:
        view |= {
            "first_name": account.first_name,
            "last_name": account.last_name,
            "address": account.address,
            "company": account.company,
        }
    return view
