"""MT-13, MT-14, MT-15: the retention engine deletes CDR and user data 180 days after the contract
ends and server logs after 180 days; nothing younger. Runs on the test's own store (SQLite or
PostgreSQL), then through `roomtrust retention run` against a live region's store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from protocol.meeting_client import MeetingApi
from protocol.stack import Stack
from roomtrust.cli import app as roomtrust_app
from services.common.clock import ManualClock
from services.common.db import transaction
from services.meeting.domain import accounts, cdr, conferences, recording, retention
from services.meeting.store.models import (
    Account,
    AccountSession,
    CallLeg,
    CallRecord,
    Conference,
    Enterprise,
    Recording,
)

CONTRACT_END = dt.date(2026, 3, 1)
MIDNIGHT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
COUNTED = (Enterprise, Account, AccountSession, Conference, CallRecord, CallLeg, Recording)


def populate(
    sessions: sessionmaker[Session],
    storage: recording.RecordingStorage,
    contract_end: dt.date | None,
    tag: str,
) -> str:
    now = MIDNIGHT - dt.timedelta(days=30)
    with transaction(sessions) as s:
        ent, admin = accounts.register_enterprise(
            s,
            region="sa",
            name=f"Corp {tag}",
            contract_end=contract_end,
            username=f"admin-{tag}@example.com",
            password="correct horse battery",
            sso=False,
            first_name="A",
            last_name="B",
            display_name="Admin",
            address="Street 1",
            company="Corp",
            now=now,
        )
        me = accounts.identity_of(s, admin)
        user = accounts.create_account(
            s,
            me,
            username=f"user-{tag}@example.com",
            display_name="User",
            password=None,
            sso=True,
            role="user",
            custom_role_id=None,
            now=now,
        )
        accounts.login(s, f"admin-{tag}@example.com", "correct horse battery", now)
        owner = accounts.identity_of(s, user)
        conference = conferences.create(
            s,
            owner,
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
            now=now,
        )
        call = cdr.open_call(s, ent.id, conference.id, "sa", now)
        s.flush()
        cdr.open_leg(s, call, user.id, now)
        cdr.close_call(s, call, now + dt.timedelta(minutes=30))
        rec = recording.start(s, storage, owner, conference, [user.id], now)
        recording.stop(s, storage, rec.id, now + dt.timedelta(minutes=5))
        return ent.id


def counts(engine: Engine, enterprise_id: str) -> dict[str, int]:
    with Session(engine) as s:
        result = {}
        for model in COUNTED:
            query = select(func.count()).select_from(model)
            if model is CallLeg:
                query = query.join(CallRecord, CallRecord.id == CallLeg.call_id).where(
                    CallRecord.enterprise_id == enterprise_id
                )
            elif model is AccountSession:
                query = query.join(Account, Account.id == AccountSession.account_id).where(
                    Account.enterprise_id == enterprise_id
                )
            elif model is Enterprise:
                query = query.where(Enterprise.id == enterprise_id)
            else:
                query = query.where(model.enterprise_id == enterprise_id)  # type: ignore[union-attr]
            result[model.__tablename__] = s.scalar(query) or 0
        return result


def test_contract_end_plus_179_keeps_and_plus_181_deletes(
    store: tuple[Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    engine, sessions = store
    storage = recording.region_storage(tmp_path / "region")
    ended = populate(sessions, storage, CONTRACT_END, "ended")
    running = populate(sessions, storage, None, "running")
    later = populate(sessions, storage, CONTRACT_END + dt.timedelta(days=30), "later")
    full = counts(engine, ended)
    assert all(full.values()), full  # every kind of row exists before
    files_before = sorted(p.name for p in storage.root.iterdir())
    assert len(files_before) == 3

    clock = ManualClock(MIDNIGHT + dt.timedelta(days=179))
    with transaction(sessions) as s:
        report = retention.run(s, clock, storage=storage)
    assert report.enterprises == []
    assert counts(engine, ended) == full
    assert sorted(p.name for p in storage.root.iterdir()) == files_before

    clock.set(MIDNIGHT + dt.timedelta(days=181))
    with transaction(sessions) as s:
        report = retention.run(s, clock, storage=storage)
    assert report.enterprises == [ended]
    assert report.call_records == 1 and report.accounts == 2 and report.recordings == 1
    assert set(counts(engine, ended).values()) == {0}
    assert counts(engine, running) == full
    assert counts(engine, later) == full
    assert len(list(storage.root.iterdir())) == 2
    with Session(engine) as s:
        assert not s.scalar(
            select(func.count()).select_from(Account).where(Account.username.like("%-ended@%"))
        )


def test_server_logs_older_than_180_days_are_deleted(tmp_path: Path, store: Any) -> None:
    _engine, sessions = store
    now = dt.datetime(2026, 9, 1, 12, tzinfo=dt.UTC)
    logs = tmp_path / "logs"
    logs.mkdir()
    names = {
        days: f"meeting-{(now.date() - dt.timedelta(days=days)).isoformat()}.log"
        for days in (0, 179, 180, 181, 400)
    }
    for name in names.values():
        (logs / name).write_text("GET /healthz 200\n")
    (logs / "notes.txt").write_text("not a server log")
    with transaction(sessions) as s:
        report = retention.run(s, ManualClock(now), log_dir=logs)
    assert sorted(report.log_files) == sorted([names[181], names[400]])
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        [names[0], names[179], names[180], "notes.txt"]
    )


def test_roomtrust_retention_run_against_a_live_region(meeting_stack: Stack) -> None:
    endpoint = meeting_stack.endpoint("meeting", "eu")
    url, ca = endpoint.url, endpoint.ca_file
    contract_end = dt.date.today() - dt.timedelta(days=10)
    with MeetingApi(url, ca) as admin:
        admin.register_enterprise("Leaving Corp", contract_end=contract_end.isoformat())
        user = admin.member("Lena Leaving")
        user.create_conference("Last call")
        runner = CliRunner()
        home = str(meeting_stack.home)
        base = dt.datetime.combine(contract_end, dt.time(), tzinfo=dt.UTC)
        keep = runner.invoke(
            roomtrust_app,
            [
                "retention",
                "run",
                "--home",
                home,
                "--region",
                "eu",
                "--json",
                "--now",
                (base + dt.timedelta(days=179)).isoformat(),
            ],
        )
        assert keep.exit_code == 0, keep.output
        assert str(admin.enterprise_id) not in keep.output
        assert user.request("GET", "/v1/me").status_code == 200
        purge = runner.invoke(
            roomtrust_app,
            [
                "retention",
                "run",
                "--home",
                home,
                "--region",
                "eu",
                "--now",
                (base + dt.timedelta(days=181)).isoformat(),
            ],
        )
        assert purge.exit_code == 0, purge.output
        assert "meeting/eu: 1 enterprise(s) purged" in purge.output
        assert user.request("GET", "/v1/me").status_code == 401
        assert admin.request("GET", "/v1/me").status_code == 401
        user.close()
