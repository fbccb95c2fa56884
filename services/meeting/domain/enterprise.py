"""Enterprise settings (MT-06, MT-17): chat, recording, live streaming, recording viewing and the
contract end date. Encryption is not a setting: an attempt to turn it off is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from services.common.errors import Invalid, NotFound
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity, log
from services.meeting.store.models import Enterprise

SWITCHES = (
    "chat_enabled",
    "recording_enabled",
    "live_streaming_enabled",
    "recording_view_restricted",
)
ENCRYPTION_WORDS = ("encrypt", "srtp", "tls", "cipher", "crypto")
ENCRYPTION_REFUSAL = "encryption is mandatory and cannot be disabled"


def enterprise_of(session: Session, enterprise_id: str) -> Enterprise:
    enterprise = session.get(Enterprise, enterprise_id)
    if enterprise is None:
        raise NotFound("no such enterprise", field="enterprise_id")
    return enterprise


def settings_view(enterprise: Enterprise) -> dict[str, Any]:
    return {
        **{name: bool(getattr(enterprise, name)) for name in SWITCHES},
        "contract_end": enterprise.contract_end.isoformat() if enterprise.contract_end else None,
    }


def parse_contract_end(value: object, field: str = "contract_end") -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise Invalid("must be a date YYYY-MM-DD or null", field=field)


def update_settings(
    session: Session, actor: Identity, changes: Mapping[str, object], now: dt.datetime
) -> Enterprise:
    actor.require(perms.ENTERPRISE_SETTINGS)
    for key in changes:
        if any(word in key.lower() for word in ENCRYPTION_WORDS):
            raise Invalid(ENCRYPTION_REFUSAL, field=key)
        if key not in SWITCHES and key != "contract_end":
            raise Invalid("not an enterprise setting", field=key)
    for key in SWITCHES:
        if key in changes and not isinstance(changes[key], bool):
            raise Invalid("must be true or false", field=key)
    contract_end = (
        parse_contract_end(changes.get("contract_end")) if "contract_end" in changes else None
    )
    enterprise = enterprise_of(session, actor.enterprise_id)
    for key in SWITCHES:
        if key in changes:
            setattr(enterprise, key, changes[key])
    if "contract_end" in changes:
        enterprise.contract_end = contract_end
    log(
        session,
        actor.username,
        "settings.update",
        at=now,
        enterprise_id=enterprise.id,
        target=enterprise.id,
        changes={k: str(v) for k, v in changes.items()},
    )
    return enterprise
