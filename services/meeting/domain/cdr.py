"""Call detail records and statistics (MT-13, MT-20): metadata only.

A call record holds the conference, region and times; a leg holds an account ID, its times, and
whether it was encrypted. No media and no chat ever reach these rows. Reports, CDR and billing
figures are shown only to holders of the statistics permission.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.common.clock import as_utc
from services.meeting.domain import permissions as perms
from services.meeting.domain.accounts import Identity
from services.meeting.domain.ids import new_id
from services.meeting.domain.legs import SIGNALING_TRANSPORT
from services.meeting.store.models import Account, CallLeg, CallRecord, Conference, Recording


def open_call(
    session: Session,
    enterprise_id: str,
    conference_id: str,
    region: str,
    now: dt.datetime,
    call_id: str | None = None,
) -> str:
    call = CallRecord(
        id=call_id or new_id(),
        enterprise_id=enterprise_id,
        conference_id=conference_id,
        region=region,
        started_at=now,
    )
    session.add(call)
    return call.id


def open_leg(
    session: Session,
    call_id: str,
    account_id: str,
    now: dt.datetime,
    encrypted: bool = True,
    transport: str = SIGNALING_TRANSPORT,
) -> int:
    leg = CallLeg(
        call_id=call_id,
        account_id=account_id,
        joined_at=now,
        encrypted=encrypted,
        transport=transport,
    )
    session.add(leg)
    session.flush()
    return leg.id


def close_leg(session: Session, leg_id: int, now: dt.datetime) -> None:
    session.execute(
        update(CallLeg).where(CallLeg.id == leg_id, CallLeg.left_at.is_(None)).values(left_at=now)
    )


def close_call(session: Session, call_id: str, now: dt.datetime) -> None:
    session.execute(
        update(CallLeg)
        .where(CallLeg.call_id == call_id, CallLeg.left_at.is_(None))
        .values(left_at=now)
    )
    session.execute(
        update(CallRecord)
        .where(CallRecord.id == call_id, CallRecord.ended_at.is_(None))
        .values(ended_at=now)
    )


def _minutes(start: dt.datetime, end: dt.datetime | None, now: dt.datetime) -> float:
    return max(0.0, ((as_utc(end) if end else now) - as_utc(start)).total_seconds() / 60)


def records(session: Session, actor: Identity, limit: int = 500) -> list[dict[str, Any]]:
    actor.require(perms.STATISTICS)
    calls = session.scalars(
        select(CallRecord)
        .where(CallRecord.enterprise_id == actor.enterprise_id)
        .order_by(CallRecord.started_at.desc())
        .limit(limit)
    ).all()
    legs: dict[str, list[CallLeg]] = defaultdict(list)
    if calls:
        for leg in session.scalars(
            select(CallLeg).where(CallLeg.call_id.in_([c.id for c in calls]))
        ):
            legs[leg.call_id].append(leg)
    return [
        {
            "cdr_id": c.id,
            "conference_id": c.conference_id,
            "region": c.region,
            "started_at": as_utc(c.started_at).isoformat(),
            "ended_at": as_utc(c.ended_at).isoformat() if c.ended_at else None,
            "legs": [
                {
                    "account_id": leg.account_id,
                    "joined_at": as_utc(leg.joined_at).isoformat(),
                    "left_at": as_utc(leg.left_at).isoformat() if leg.left_at else None,
                    "encrypted": leg.encrypted,
                    "transport": leg.transport,
                }
                for leg in legs[c.id]
            ],
        }
        for c in calls
    ]


def _legs(session: Session, enterprise_id: str) -> list[CallLeg]:
    return list(
        session.scalars(
            select(CallLeg)
            .join(CallRecord, CallRecord.id == CallLeg.call_id)
            .where(CallRecord.enterprise_id == enterprise_id)
        )
    )


def report(session: Session, actor: Identity, now: dt.datetime) -> dict[str, Any]:
    actor.require(perms.STATISTICS)
    legs = _legs(session, actor.enterprise_id)
    conferences = session.scalar(
        select(func.count())
        .select_from(CallRecord)
        .where(CallRecord.enterprise_id == actor.enterprise_id)
    )
    return {
        "conferences": conferences or 0,
        "legs": len(legs),
        "encrypted_legs": sum(1 for leg in legs if leg.encrypted),
        "participant_minutes": round(
            sum(_minutes(leg.joined_at, leg.left_at, now) for leg in legs), 2
        ),
    }


def billing(session: Session, actor: Identity, now: dt.datetime) -> dict[str, Any]:
    actor.require(perms.STATISTICS)
    by_month: dict[str, float] = defaultdict(float)
    for leg in _legs(session, actor.enterprise_id):
        by_month[as_utc(leg.joined_at).strftime("%Y-%m")] += _minutes(
            leg.joined_at, leg.left_at, now
        )
    return {
        "participant_minutes": round(sum(by_month.values()), 2),
        "by_month": {month: round(minutes, 2) for month, minutes in sorted(by_month.items())},
    }


def dashboard(session: Session, actor: Identity, live_conferences: int) -> dict[str, Any]:
    actor.require(perms.DASHBOARD)

    def count(model: Any, *where: Any) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    mine = actor.enterprise_id
    return {
        "accounts": count(Account, Account.enterprise_id == mine, Account.kind == "member"),
        "room_systems": count(
            Account, Account.enterprise_id == mine, Account.kind == "room_system"
        ),
        "conferences": count(Conference, Conference.enterprise_id == mine),
        "live_conferences": live_conferences,
        "recordings": count(Recording, Recording.enterprise_id == mine),
    }
