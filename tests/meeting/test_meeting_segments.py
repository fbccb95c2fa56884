"""Segment resources and Teams access (MT-11's `segment.resources` and `teams.access`) on the test's
own store (SQLite or PostgreSQL): a segment's recording quota stops its members' next recording
once used up, and nobody else's; an enterprise without Teams access refuses the interop gateway's
room systems at join, and admits them again once allowed. The migration to this store goes up,
down and up and matches the models. (tests/meeting/test_meeting_permissions.py checks on the live
API that only the roles holding each permission reach its endpoints.)"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session, sessionmaker

from protocol.meeting_client import MeetingApi
from roomtrust.harness.stores import database_url
from services.common.db import make_engine, sqlite_url, transaction
from services.common.errors import Conflict, Forbidden, Invalid, NotFound
from services.meeting.domain import accounts, conferences, recording, segments
from services.meeting.domain.accounts import Identity
from services.meeting.domain.legs import INTEROP_CALLER
from services.meeting.main import MIGRATIONS
from services.meeting.store.models import Base, Conference

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@dataclass
class World:
    sessions: sessionmaker[Session]
    storage: recording.RecordingStorage
    admin: Identity
    alice: Identity  # in the segment
    bob: Identity  # in no segment
    conference_id: str


def _member(s: Session, admin: Identity, name: str) -> Identity:
    account = accounts.create_account(
        s,
        admin,
        username=f"{name}-{secrets.token_hex(3)}@example.com",
        display_name=name,
        password=None,
        sso=True,
        role="user",
        custom_role_id=None,
        now=NOW,
    )
    return accounts.identity_of(s, account)


@pytest.fixture
def world(store: tuple[sa.Engine, sessionmaker[Session]], tmp_path: Path) -> World:
    _engine, sessions = store
    with transaction(sessions) as s:
        _ent, admin_account = accounts.register_enterprise(
            s,
            region="sa",
            name="Segment Corp",
            contract_end=None,
            username=f"admin-{secrets.token_hex(3)}@example.com",
            password="correct horse battery",
            sso=False,
            first_name="A",
            last_name="B",
            display_name="Admin",
            address="Street 1",
            company="Corp",
            now=NOW,
        )
        admin = accounts.identity_of(s, admin_account)
        alice, bob = _member(s, admin, "Alice"), _member(s, admin, "Bob")
        conference = conferences.create(
            s,
            alice,
            region="sa",
            regions=["sa"],
            matrix={},
            title="Room",
            kind="vmr",
            password=None,
            hidden=False,
            locked=False,
            escalation=False,
            participant_locations=None,
            now=NOW,
        )
        conference_id = conference.id
    storage = recording.region_storage(tmp_path / "region")
    return World(sessions, storage, admin, alice, bob, conference_id)


def _record(world: World, who: Identity, at: dt.datetime, minutes: float) -> None:
    with transaction(world.sessions) as s:
        conference = s.get(Conference, world.conference_id)
        assert conference is not None
        made = recording.start(s, world.storage, who, conference, [who.account_id], at)
        recording.stop(s, world.storage, made.id, at + dt.timedelta(minutes=minutes))


def test_a_segment_recording_quota_stops_its_members_once_used_up(world: World) -> None:
    with transaction(world.sessions) as s:
        segment = segments.create_segment(
            s,
            world.admin,
            name="Sales",
            members=[world.alice.account_id],
            recording_minutes=10,
            now=NOW,
        )
        segment_id = segment.id
    _record(world, world.alice, NOW, 6)  # 6 of 10 minutes
    _record(world, world.alice, NOW + dt.timedelta(hours=1), 6)  # started with 4 left: 12 used
    with pytest.raises(Forbidden) as refused:
        _record(world, world.alice, NOW + dt.timedelta(hours=2), 1)
    assert refused.value.field == "action" and "quota of 10 minutes" in refused.value.reason
    # the negative control: someone in no segment records as before
    _record(world, world.bob, NOW + dt.timedelta(hours=2), 30)
    with transaction(world.sessions) as s:
        (view,) = [segments.segment_view(s, g, NOW) for g in segments.list_segments(s, world.admin)]
        assert view["recorded_minutes"] == 12.0 and view["members"] == [world.alice.account_id]
        # more quota: Alice records again
        segments.set_resources(s, world.admin, segment_id, 20, NOW)
    _record(world, world.alice, NOW + dt.timedelta(hours=3), 1)
    with transaction(world.sessions) as s:
        segments.set_resources(s, world.admin, segment_id, None, NOW)  # no quota
    _record(world, world.alice, NOW + dt.timedelta(hours=4), 60)


def test_a_quota_of_zero_means_no_recording_and_bad_input_names_the_field(world: World) -> None:
    with transaction(world.sessions) as s:
        segments.create_segment(
            s,
            world.admin,
            name="Quiet",
            members=[world.bob.account_id],
            recording_minutes=0,
            now=NOW,
        )
    with pytest.raises(Forbidden):
        _record(world, world.bob, NOW, 1)
    cases = [
        (dict(name="Quiet", members=[], recording_minutes=5), Conflict, "name"),
        (
            dict(name="X", members=[world.bob.account_id], recording_minutes=5),
            Conflict,
            "members.0",
        ),
        (dict(name="Y", members=["nobody"], recording_minutes=5), NotFound, "members.0"),
        (dict(name="Z", members=[], recording_minutes=-1), Invalid, "recording_minutes"),
        (dict(name="W", members=[], recording_minutes=True), Invalid, "recording_minutes"),
        (dict(name=" ", members=[], recording_minutes=None), Invalid, "name"),
    ]
    for kwargs, error, field in cases:
        with pytest.raises(error) as raised, transaction(world.sessions) as s:
            segments.create_segment(s, world.admin, now=NOW, **kwargs)  # type: ignore[arg-type]
        assert raised.value.field == field, kwargs
    # a member without the permission manages no segment
    with pytest.raises(Forbidden), transaction(world.sessions) as s:
        segments.list_segments(s, world.alice)


def _interop_caller() -> Identity:
    return Identity(
        account_id="sips:0123456789abcdef",
        enterprise_id="",
        username="sips:0123456789abcdef",
        display_name="SIPS room system",
        role=INTEROP_CALLER,
        kind=INTEROP_CALLER,
        permissions=frozenset({"call.place_receive", "media.self_disable"}),
    )


def test_teams_access_admits_or_refuses_the_interop_gateway_at_join(world: World) -> None:
    caller = _interop_caller()
    with transaction(world.sessions) as s:
        assert segments.teams_access_view(s, world.admin) == {"interop_enabled": True}
        conferences.check_join(s, caller, world.conference_id, None, "sa")  # allowed by default
        segments.set_teams_access(s, world.admin, False, NOW)
    with pytest.raises(Forbidden) as refused, transaction(world.sessions) as s:
        conferences.check_join(s, caller, world.conference_id, None, "sa")
    assert refused.value.field == "conference_id"
    with transaction(world.sessions) as s:
        # the enterprise's own members still join
        conferences.check_join(s, world.bob, world.conference_id, None, "sa")
        with pytest.raises(Invalid):
            segments.set_teams_access(s, world.admin, "no", NOW)
        with pytest.raises(Forbidden):
            segments.set_teams_access(s, world.alice, True, NOW)
        segments.set_teams_access(s, world.admin, True, NOW)
    with transaction(world.sessions) as s:
        conferences.check_join(s, caller, world.conference_id, None, "sa")


def _alembic(engine: sa.Engine, *step: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, step[0])(cfg, step[1])


@pytest.fixture
def bare_engine(tmp_path: Path, schema_prefix: str) -> Iterator[sa.Engine]:
    url = database_url()
    if url:
        engine = make_engine(url, f"{schema_prefix}mt_migr_{secrets.token_hex(3)}")
    else:
        engine = make_engine(sqlite_url(tmp_path / "meeting.sqlite3"))
    yield engine
    engine.dispose()


def test_migration_0002_goes_up_down_and_up_and_matches_the_models(bare_engine: sa.Engine) -> None:
    new = {"segments", "segment_members"}
    _alembic(bare_engine, "upgrade", "head")
    assert set(sa.inspect(bare_engine).get_table_names()) >= new
    _alembic(bare_engine, "downgrade", "0001")
    assert not new & set(sa.inspect(bare_engine).get_table_names())
    columns = {c["name"] for c in sa.inspect(bare_engine).get_columns("enterprises")}
    assert "interop_enabled" not in columns
    _alembic(bare_engine, "upgrade", "head")
    with bare_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


# -- the live API: bad input gets 4xx naming the field, never a 500 ------------------------------


def test_the_segment_and_teams_access_endpoints_refuse_bad_input_naming_the_field(
    admin_sa: MeetingApi,
) -> None:
    member = admin_sa.member("Sam Segment")
    made = admin_sa.call(
        "POST", "/v1/segments", json={"name": "Ops", "members": [member.account_id]}
    )
    sid = made["segment_id"]
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/v1/segments", {"name": "Ops"}, 409, "name"),
        ("POST", "/v1/segments", {"name": "B", "members": [member.account_id]}, 409, "members.0"),
        ("POST", "/v1/segments", {"name": "C", "members": ["nobody"]}, 404, "members.0"),
        ("POST", "/v1/segments", {"name": "D", "recording_minutes": -5}, 422, "recording_minutes"),
        (
            "POST",
            "/v1/segments",
            {"name": "E", "recording_minutes": "lots"},
            422,
            "recording_minutes",
        ),
        ("POST", "/v1/segments", {"name": "F", "relay": 3}, 422, "relay"),
        ("PUT", f"/v1/segments/{sid}/resources", {}, 422, "recording_minutes"),
        ("PUT", "/v1/segments/nosuch/resources", {"recording_minutes": 5}, 404, "segment_id"),
        ("PUT", f"/v1/segments/{sid}/members", {"members": ["x", "x"]}, 422, "members"),
        ("PUT", "/v1/enterprise/teams-access", {"interop_enabled": "yes"}, 422, "interop_enabled"),
        ("PUT", "/v1/enterprise/teams-access", {}, 422, "interop_enabled"),
    ]
    for method, path, body, status, field in cases:
        answer = admin_sa.request(method, path, json=body)
        assert answer.status_code == status, (path, body, answer.text)
        assert answer.json()["field"] == field, (path, body, answer.json())
    changed = admin_sa.call("PUT", f"/v1/segments/{sid}/resources", json={"recording_minutes": 90})
    assert changed["recording_minutes"] == 90 and changed["members"] == [member.account_id]
    emptied = admin_sa.call("PUT", f"/v1/segments/{sid}/members", json={"members": []})
    assert emptied["members"] == []
    assert admin_sa.call("PUT", "/v1/enterprise/teams-access", json={"interop_enabled": False}) == {
        "interop_enabled": False
    }
    assert admin_sa.call("GET", "/v1/enterprise/teams-access") == {"interop_enabled": False}
