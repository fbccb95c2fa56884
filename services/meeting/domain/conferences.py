"""Conferences (MT-01, MT-09): permanent virtual meeting rooms and one-off conferences.

A one-off conference never appears in the directory and its row is deleted when it ends, so a later
join finds nothing. A conference ID names its hosting region; a region asked about another region's
conference points the caller there instead of answering.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import Conflict, Forbidden, Invalid, NotFound
from services.common.passwords import hash_password, verify_password
from services.meeting.domain import ids, segments
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity, log
from services.meeting.domain.legs import INTEROP_CALLER
from services.meeting.domain.placement import LatencyMatrix, place
from services.meeting.store.models import Conference

VMR = "vmr"
ONE_OFF = "one_off"
KINDS = (VMR, ONE_OFF)
MIN_PASSWORD = 4


def _password_hash(password: object) -> str | None:
    if password is None:
        return None
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= 128:
        raise Invalid(f"a conference password has {MIN_PASSWORD} to 128 characters", "password")
    return hash_password(password)


def create(
    session: Session,
    actor: Identity,
    *,
    region: str,
    regions: Sequence[str],
    matrix: LatencyMatrix,
    title: str,
    kind: str,
    password: str | None,
    hidden: bool,
    locked: bool,
    escalation: bool,
    participant_locations: Sequence[str] | None,
    now: dt.datetime,
) -> Conference:
    actor.require(perms.CONFERENCE_CREATE)
    if kind not in KINDS:
        raise Invalid("kind must be vmr or one_off", field="kind")
    if password is not None:
        actor.require(perms.CONFERENCE_PASSWORD)
    if hidden:
        actor.require(perms.CONFERENCE_HIDE)
    title = title.strip()
    if not title or len(title) > 200:
        raise Invalid("must be 1 to 200 characters", field="title")
    if participant_locations:
        chosen = place(participant_locations, matrix, regions).region
        if chosen != region:
            raise Conflict(
                f"the optimal region for these participants is {chosen}; create it there",
                field="participant_locations",
            )
    conference = Conference(
        id=ids.conference_id(region),
        enterprise_id=actor.enterprise_id,
        owner_id=actor.account_id,
        region=region,
        kind=kind,
        title=title,
        password_hash=_password_hash(password),
        hidden=hidden or kind == ONE_OFF,
        locked=locked,
        escalation=escalation,
        created_at=now,
    )
    session.add(conference)
    session.flush()
    return conference


def locate(session: Session, conference_id: str, region: str) -> Conference:
    """The conference hosted here; another region's ID is answered with that region's name."""
    if not ids.is_conference_id(conference_id):
        raise NotFound("no such conference (it may have ended)", field="conference_id")
    home = ids.region_of_conference(conference_id)
    if home is not None and home != region:
        raise Conflict(f"the conference is hosted in region {home}", field="conference_id")
    conference = session.get(Conference, conference_id)
    if conference is None:
        raise NotFound("no such conference (it may have ended)", field="conference_id")
    return conference


def _may_manage(actor: Identity, conference: Conference, permission: str) -> bool:
    if actor.enterprise_id != conference.enterprise_id:
        return False
    return conference.owner_id == actor.account_id or actor.can(permission)


def get(session: Session, actor: Identity, conference_id: str, region: str) -> Conference:
    conference = locate(session, conference_id, region)
    if actor.enterprise_id != conference.enterprise_id:
        raise NotFound("no such conference (it may have ended)", field="conference_id")
    return conference


def directory(session: Session, actor: Identity, scope: str) -> Sequence[Conference]:
    query = select(Conference).where(Conference.enterprise_id == actor.enterprise_id)
    if scope == "all":
        actor.require(perms.MEETING_MANAGE)
    elif scope == "directory":
        query = query.where(Conference.hidden.is_(False), Conference.kind == VMR)
    else:
        raise Invalid("scope must be directory or all", field="scope")
    return session.scalars(query.order_by(Conference.created_at)).all()


def update(
    session: Session,
    actor: Identity,
    conference_id: str,
    region: str,
    changes: Mapping[str, Any],
    now: dt.datetime,
) -> Conference:
    conference = get(session, actor, conference_id, region)
    owner = conference.owner_id == actor.account_id
    if not _may_manage(actor, conference, perms.MEETING_MANAGE) and not _may_manage(
        actor, conference, perms.VMR_MANAGE
    ):
        raise Forbidden("only the owner or a meeting manager may change the conference", None)
    if "password" in changes and owner:
        actor.require(perms.CONFERENCE_PASSWORD)
    if changes.get("hidden") is True and owner:
        actor.require(perms.CONFERENCE_HIDE)
    if changes.get("hidden") is False and conference.kind == ONE_OFF:
        raise Invalid("a one-off conference is never in the directory", field="hidden")
    if "title" in changes:
        title = str(changes["title"] or "").strip()
        if not title or len(title) > 200:
            raise Invalid("must be 1 to 200 characters", field="title")
        conference.title = title
    if "password" in changes:
        conference.password_hash = _password_hash(changes["password"])
    for flag in ("hidden", "locked", "escalation"):
        if changes.get(flag) is not None:
            setattr(conference, flag, bool(changes[flag]))
    if not owner:
        log(
            session,
            actor.username,
            "conference.update",
            at=now,
            enterprise_id=actor.enterprise_id,
            target=conference.id,
            fields=sorted(changes),
        )
    return conference


def may_end(actor: Identity, conference: Conference) -> bool:
    return _may_manage(actor, conference, perms.MEETING_MANAGE)


def authorize_end(actor: Identity, conference: Conference) -> None:
    if not may_end(actor, conference):
        raise Forbidden("only the owner or a meeting manager may end the conference", None)


def finish(session: Session, conference_id: str) -> bool:
    """The conference session has ended: a one-off conference is deleted. True when deleted."""
    conference = session.get(Conference, conference_id)
    if conference is None:
        return False
    if conference.kind == ONE_OFF:
        session.delete(conference)
        return True
    return False


def delete(
    session: Session, actor: Identity, conference_id: str, region: str, now: dt.datetime
) -> Conference:
    conference = get(session, actor, conference_id, region)
    if not _may_manage(actor, conference, perms.VMR_MANAGE):
        raise Forbidden("only the owner or a VMR manager may delete the conference", None)
    session.delete(conference)
    log(
        session,
        actor.username,
        "conference.delete",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=conference.id,
    )
    return conference


def check_join(
    session: Session, actor: Identity, conference_id: str, password: object, region: str
) -> Conference:
    """May this caller enter (the lobby of) the conference? Returns it when so."""
    actor.require(perms.CALL)
    conference = locate(session, conference_id, region)
    if actor.kind == INTEROP_CALLER:  # Teams access: the enterprise admits gateway legs or not
        segments.check_interop_allowed(session, conference.enterprise_id)
    if conference.password_hash is not None and (
        not isinstance(password, str) or not verify_password(conference.password_hash, password)
    ):
        raise Forbidden("wrong conference password", field="password")
    return conference


def view(conference: Conference, live: bool = False) -> dict[str, Any]:
    return {
        "conference_id": conference.id,
        "region": conference.region,
        "title": conference.title,
        "kind": conference.kind,
        "owner_id": conference.owner_id,
        "hidden": conference.hidden,
        "locked": conference.locked,
        "escalation": conference.escalation,
        "has_password": conference.password_hash is not None,
        "state": "active" if live else "idle",
        "created_at": conference.created_at.isoformat(),
    }
