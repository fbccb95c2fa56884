"""Conferences: creation (placed in the region nearest its participants, MT-01), the directory,
changes, ending and deletion. A change of lock or escalation reaches the live session at once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from protocol.regions import MEETING_REGIONS
from services.meeting.api import responses, schemas
from services.meeting.api.deps import Caller, MeetingRegion
from services.meeting.domain import accounts, conferences
from services.meeting.domain.accounts import Identity
from services.meeting.store.models import Conference

router = APIRouter()


def conference_view(region: MeetingRegion, conference: Conference) -> dict[str, Any]:
    return conferences.view(conference, live=region.signaling.is_live(conference.id))


def _flag(changes: dict[str, object], name: str) -> bool | None:
    value = changes.get(name)
    return value if isinstance(value, bool) else None


@router.post("/v1/conferences", status_code=201, response_model=responses.ConferenceOut)
async def create_conference(body: schemas.ConferenceIn, caller: Caller) -> dict[str, Any]:
    region = caller.region
    now = region.clock.now()
    return await caller.run(
        lambda s, me: conference_view(
            region,
            conferences.create(
                s,
                me,
                region=region.region,
                regions=MEETING_REGIONS,
                matrix=region.matrix,
                title=body.title,
                kind=body.kind,
                password=body.password,
                hidden=body.hidden,
                locked=body.locked,
                escalation=body.escalation,
                participant_locations=body.participant_locations,
                now=now,
            ),
        )
    )


@router.get("/v1/conferences", response_model=list[responses.ConferenceOut])
async def directory(caller: Caller, scope: str = "directory") -> list[dict[str, Any]]:
    region = caller.region
    return await caller.run(
        lambda s, me: [conference_view(region, c) for c in conferences.directory(s, me, scope)]
    )


@router.get("/v1/conferences/{conference_id}", response_model=responses.ConferenceOut)
async def get_conference(conference_id: str, caller: Caller) -> dict[str, Any]:
    region = caller.region
    return await caller.run(
        lambda s, me: conference_view(region, conferences.get(s, me, conference_id, region.region))
    )


@router.patch("/v1/conferences/{conference_id}", response_model=responses.ConferenceOut)
async def update_conference(
    conference_id: str, body: schemas.ConferenceUpdate, caller: Caller
) -> dict[str, Any]:
    region = caller.region
    now = region.clock.now()
    changes = body.changes()
    view = await caller.run(
        lambda s, me: conference_view(
            region, conferences.update(s, me, conference_id, region.region, changes, now)
        )
    )
    # a live session re-sends the roster on any change, as it always has
    locked, escalation = _flag(changes, "locked"), _flag(changes, "escalation")
    await region.signaling.reconfigure(conference_id, locked, escalation)
    return view


@router.post("/v1/conferences/{conference_id}/end", response_model=responses.ConferenceEnded)
async def end_conference(conference_id: str, caller: Caller) -> responses.ConferenceEnded:
    region = caller.region
    now = region.clock.now()

    def authorize(s: Session, me: Identity) -> str:
        conference = conferences.get(s, me, conference_id, region.region)
        conferences.authorize_end(me, conference)
        if conference.owner_id != me.account_id:
            accounts.log(
                s,
                me.username,
                "conference.end",
                at=now,
                enterprise_id=me.enterprise_id,
                target=conference.id,
            )
        return conference.kind

    kind = await caller.run(authorize)
    was_live = await region.signaling.end_conference(conference_id)
    if not was_live:
        deleted = await region.run(lambda s: conferences.finish(s, conference_id))
    else:
        deleted = kind == conferences.ONE_OFF
    return responses.ConferenceEnded(ended=True, was_live=was_live, deleted=deleted)


@router.delete("/v1/conferences/{conference_id}", response_model=responses.Deleted)
async def delete_conference(conference_id: str, caller: Caller) -> responses.Deleted:
    region = caller.region
    now = region.clock.now()
    await caller.run(lambda s, me: conferences.delete(s, me, conference_id, region.region, now))
    await region.signaling.end_conference(conference_id)
    return responses.Deleted(deleted=True)
