"""Segment resources and Teams access: the two management permissions of seed 001 that gate an
enterprise's shared resources (MT-11).

- **Segment resources** (`segment.resources`): an administrator groups accounts into segments
  (an account is in one segment at most) and gives each segment a recording quota, in minutes of
  recording for its members together. A member whose segment has used its quota cannot start a
  recording (checked when the recording starts); None means no quota, 0 means no recording.
- **Teams access** (`teams.access`): whether the region's interop gateway may bring third-party
  room systems (SIP, H.323) into the enterprise's conferences. Checked when a gateway leg joins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.clock import as_utc
from services.common.errors import Conflict, Forbidden, Invalid, NotFound
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity, log
from services.meeting.domain.enterprise import enterprise_of
from services.meeting.domain.ids import is_plain_id, new_id
from services.meeting.store.models import Account, Recording, Segment, SegmentMember

MAX_MEMBERS = 10_000
MAX_RECORDING_MINUTES = 10_000_000


def _check_minutes(value: object, field: str = "recording_minutes") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be a whole number of minutes or null", field=field)
    if not 0 <= value <= MAX_RECORDING_MINUTES:
        raise Invalid(f"must be 0 to {MAX_RECORDING_MINUTES} minutes", field=field)
    return value


def _segment_in(session: Session, actor: Identity, segment_id: str) -> Segment:
    segment = session.get(Segment, segment_id) if is_plain_id(segment_id) else None
    if segment is None or segment.enterprise_id != actor.enterprise_id:
        raise NotFound("no such segment in your enterprise", field="segment_id")
    return segment


def _set_members(
    session: Session, actor: Identity, segment: Segment, members: Sequence[str]
) -> None:
    if len(members) > MAX_MEMBERS:
        raise Invalid(f"at most {MAX_MEMBERS} members", field="members")
    if len(set(members)) != len(members):
        raise Invalid("an account is named twice", field="members")
    for index, account_id in enumerate(members):
        account = session.get(Account, account_id) if is_plain_id(account_id) else None
        if account is None or account.enterprise_id != actor.enterprise_id:
            raise NotFound("no such account in your enterprise", field=f"members.{index}")
        other = session.get(SegmentMember, account_id)
        if other is not None and other.segment_id != segment.id:
            raise Conflict(
                f"the account is in segment {other.segment_id} already", field=f"members.{index}"
            )
    for old in session.scalars(select(SegmentMember).where(SegmentMember.segment_id == segment.id)):
        if old.account_id not in members:
            session.delete(old)
    for account_id in members:
        if session.get(SegmentMember, account_id) is None:
            session.add(SegmentMember(account_id=account_id, segment_id=segment.id))
    session.flush()


def create_segment(
    session: Session,
    actor: Identity,
    *,
    name: str,
    members: Sequence[str],
    recording_minutes: object,
    now: dt.datetime,
) -> Segment:
    actor.require(perms.SEGMENT_RESOURCES)
    name = name.strip()
    if not name:
        raise Invalid("must not be blank", field="name")
    minutes = _check_minutes(recording_minutes)
    taken = session.scalars(
        select(Segment).where(Segment.enterprise_id == actor.enterprise_id, Segment.name == name)
    ).first()
    if taken is not None:
        raise Conflict("a segment of that name exists", field="name")
    segment = Segment(
        id=new_id(),
        enterprise_id=actor.enterprise_id,
        name=name,
        recording_minutes=minutes,
        created_at=now,
    )
    session.add(segment)
    session.flush()
    _set_members(session, actor, segment, members)
    log(
        session,
        actor.username,
        "segment.create",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=segment.id,
        members=len(members),
        recording_minutes=minutes,
    )
    return segment


def set_resources(
    session: Session, actor: Identity, segment_id: str, recording_minutes: object, now: dt.datetime
) -> Segment:
    actor.require(perms.SEGMENT_RESOURCES)
    segment = _segment_in(session, actor, segment_id)
    segment.recording_minutes = _check_minutes(recording_minutes)
    log(
        session,
        actor.username,
        "segment.resources",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=segment.id,
        recording_minutes=segment.recording_minutes,
    )
    return segment


def set_members(
    session: Session, actor: Identity, segment_id: str, members: Sequence[str], now: dt.datetime
) -> Segment:
    actor.require(perms.SEGMENT_RESOURCES)
    segment = _segment_in(session, actor, segment_id)
    _set_members(session, actor, segment, members)
    log(
        session,
        actor.username,
        "segment.members",
        at=now,
        enterprise_id=actor.enterprise_id,
        target=segment.id,
        members=len(members),
    )
    return segment


def list_segments(session: Session, actor: Identity) -> list[Segment]:
    actor.require(perms.SEGMENT_RESOURCES)
    return list(
        session.scalars(
            select(Segment)
            .where(Segment.enterprise_id == actor.enterprise_id)
            .order_by(Segment.name)
        )
    )


def members_of(session: Session, segment: Segment) -> list[str]:
    return sorted(
        session.scalars(
            select(SegmentMember.account_id).where(SegmentMember.segment_id == segment.id)
        )
    )


def recorded_minutes(session: Session, segment: Segment, now: dt.datetime) -> float:
    """Minutes of recording started by the segment's members, a running one up to now."""
    members = select(SegmentMember.account_id).where(SegmentMember.segment_id == segment.id)
    seconds = 0.0
    for started, stopped in session.execute(
        select(Recording.started_at, Recording.stopped_at).where(Recording.recorder_id.in_(members))
    ):
        seconds += max(0.0, (as_utc(stopped or now) - as_utc(started)).total_seconds())
    return seconds / 60.0


def segment_view(session: Session, segment: Segment, now: dt.datetime) -> dict[str, Any]:
    return {
        "segment_id": segment.id,
        "name": segment.name,
        "members": members_of(session, segment),
        "recording_minutes": segment.recording_minutes,
        "recorded_minutes": round(recorded_minutes(session, segment, now), 2),
    }


def check_recording_quota(session: Session, account_id: str, now: dt.datetime) -> None:
    """Refuse a recording by a member of a segment whose recording quota is used up."""
    membership = session.get(SegmentMember, account_id) if is_plain_id(account_id) else None
    if membership is None:
        return
    segment = session.get(Segment, membership.segment_id)
    if segment is None or segment.recording_minutes is None:
        return
    if recorded_minutes(session, segment, now) >= segment.recording_minutes:
        raise Forbidden(
            f"your segment's recording quota of {segment.recording_minutes} minutes is used up",
            field="action",
        )


# -- Teams access --------------------------------------------------------------------------------


def teams_access_view(session: Session, actor: Identity) -> dict[str, Any]:
    actor.require(perms.TEAMS_ACCESS)
    enterprise = enterprise_of(session, actor.enterprise_id)
    return {"interop_enabled": bool(enterprise.interop_enabled)}


def set_teams_access(
    session: Session, actor: Identity, interop_enabled: object, now: dt.datetime
) -> dict[str, Any]:
    actor.require(perms.TEAMS_ACCESS)
    if not isinstance(interop_enabled, bool):
        raise Invalid("must be true or false", field="interop_enabled")
    enterprise = enterprise_of(session, actor.enterprise_id)
    enterprise.interop_enabled = interop_enabled
    log(
        session,
        actor.username,
        "teams_access.update",
        at=now,
        enterprise_id=enterprise.id,
        interop_enabled=interop_enabled,
    )
    return {"interop_enabled": interop_enabled}


def check_interop_allowed(session: Session, enterprise_id: str) -> None:
    """An interop gateway leg may join only where the enterprise allows it (Teams access)."""
    enterprise = enterprise_of(session, enterprise_id)
    if not enterprise.interop_enabled:
        raise Forbidden(
            "this enterprise does not admit interop gateway (SIP, H.323) room systems",
            field="conference_id",
        )
