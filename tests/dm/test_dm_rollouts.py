"""The rollout engine of the DM service on a real store (SQLite, or PostgreSQL with
ROOMTRUST_DATABASE_URL), without HTTP: plans checked field by field, firmware commands with their
per-download keys, health alerts and late joiners fed on a tick, administrators' controls, and a
journal that rebuilds every planner after a restart or a failed commit."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from services.common.blobstore import DirectoryBlobStore
from services.common.db import transaction
from services.common.errors import Conflict, DomainError, Invalid, NotFound
from services.common.firmware import generate_release_key
from services.dm.domain import accounts, alerts, commands, fleet, images
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.rollouts import RolloutEngine
from services.dm.store.models import (
    Device,
    DeviceCommand,
    FirmwareDownload,
    OperationLogEntry,
    Rollout,
    RolloutEvent,
)

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MODEL, OLD, NEW = "MeetingBar A20", "264.410.0.5", "264.411.0.0"


@dataclass
class World:
    sessions: sessionmaker[Session]
    engine: RolloutEngine
    admin: AdminIdentity
    site: str
    image_id: str
    devices: list[str]


def register(s: Session, email: str) -> AdminIdentity:
    accounts.register_enterprise(
        s,
        region="us",
        name=email,
        email=email,
        password="correct horse battery",
        first_name="A",
        last_name="B",
        phone=None,
        now=T0,
    )
    s.flush()
    _token, row = accounts.login(s, email, "correct horse battery", T0)
    return AdminIdentity(row.id, row.enterprise_id, row.email)


def add_device(s: Session, admin: AdminIdentity, site: str, n: int, version: str | None) -> str:
    device = fleet.deploy_device(
        s,
        admin,
        mac=f"02:00:00:00:{n // 256:02x}:{n % 256:02x}",
        serial_number=f"S{n}",
        model=MODEL,
        site_id=site,
        name=None,
        tags=[],
        now=T0,
    )
    device.state, device.cert_serial, device.firmware_version = "enrolled", f"c{n:x}", version
    return device.id


@pytest.fixture
def world(dm_sessions: sessionmaker[Session], tmp_path: Path) -> World:
    with transaction(dm_sessions) as s:
        admin = register(s, "ops@example.com")
        site = fleet.create_site(
            s,
            admin,
            name="HQ",
            time_zone="Europe/Berlin",
            latitude=None,
            longitude=None,
            server_id=None,
            now=T0,
        ).id
        s.flush()
        ids = [add_device(s, admin, site, n, OLD) for n in range(10)]
        image = images.upload_image(
            s,
            admin,
            model=MODEL,
            version=NEW,
            image=b"firmware" * 100,
            release_key=generate_release_key(),
            blobs=DirectoryBlobStore(tmp_path / "objects"),
            now=T0,
        )
        image_id = image.id
    return World(dm_sessions, RolloutEngine(dm_sessions, "us"), admin, site, image_id, ids)


def create(w: World, **plan: Any) -> str:
    body = {"image_id": w.image_id, "waves": [{"count": 2}, {"percent": 100}], **plan}
    row, _ = w.engine.run(lambda s: w.engine.create(s, w.admin, body, T0))
    return row.id


def start(w: World, rollout_id: str, now: dt.datetime = T0) -> list[str]:
    _, notify = w.engine.run(lambda s: w.engine.start(s, w.admin, rollout_id, now))
    return notify


def status(w: World, rollout_id: str) -> dict[str, Any]:
    result, _ = w.engine.run(lambda s: w.engine.status(s, w.admin, rollout_id))
    return result


def firmware_command(s: Session, device_id: str) -> DeviceCommand:
    (command,) = [c for c in commands.pending(s, device_id) if c.kind == "firmware"]
    return command


def report(w: World, device_id: str, now: dt.datetime, **result: Any) -> list[str]:
    def job(s: Session) -> None:
        device = s.get(Device, device_id)
        assert device is not None
        command = firmware_command(s, device_id)
        w.engine.device_result(s, device, command, result, now)
        commands.acknowledge(s, device, command.id, result, now)

    _, notify = w.engine.run(job)
    return notify


def tick(w: World, now: dt.datetime) -> list[str]:
    _, notify = w.engine.run(lambda s: w.engine.tick(s, now))
    return notify


# -- plans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"waves": []}, "waves"),
        ({"waves": [{"percent": 0}]}, "waves[0].percent"),
        ({"waves": [{"count": 2, "percent": 5}]}, "waves[0]"),
        ({"waves": [{"count": 0}]}, "waves[0].count"),
        ({"error_threshold": {"percent": 101}}, "error_threshold.percent"),
        ({"success_percent": 0}, "success_percent"),
        ({"on_error": "explode"}, "on_error"),
        ({"alert_window_minutes": -1}, "alert_window_minutes"),
        ({"windows": [{"start": "25:00", "end": "04:00"}]}, "windows[0].start"),
        ({"windows": [{"start": "02:00", "end": "04:00", "weekdays": [7]}]}, "windows[0].weekdays"),
        ({"windows": [{"start": "02:00"}]}, "windows[0]"),
        ({"download_cap": 0}, "download_cap"),
        ({"target": {"models": ["MeetingBoard 65"]}}, "target.models"),
        ({"target": {"site_ids": ["nowhere"]}}, "target.site_ids"),
        ({"target": {"versions": ["latest"]}}, "target.versions"),
        ({"target": {"rooms": ["a"]}}, "target.rooms"),
        ({"image_id": "missing"}, "image_id"),
    ],
)
def test_a_bad_plan_names_its_field_and_creates_nothing(
    world: World, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(DomainError) as refused:
        create(world, **change)
    assert refused.value.field == field
    assert isinstance(refused.value, Invalid | NotFound)
    with transaction(world.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Rollout)) == 0


def test_another_enterprise_can_neither_use_the_image_nor_see_the_rollout(world: World) -> None:
    with transaction(world.sessions) as s:
        stranger = register(s, "stranger@example.org")
    rollout_id = create(world)
    body = {"image_id": world.image_id, "waves": [{"percent": 100}]}
    with pytest.raises(NotFound):
        world.engine.run(lambda s: world.engine.create(s, stranger, body, T0))
    for attempt in (
        lambda s: world.engine.status(s, stranger, rollout_id),
        lambda s: world.engine.start(s, stranger, rollout_id, T0),
        lambda s: world.engine.control(s, stranger, rollout_id, "abort", T0),
    ):
        with pytest.raises(NotFound):
            world.engine.run(attempt)
    assert world.engine.run(lambda s: world.engine.list_rollouts(s, stranger))[0] == []
    assert status(world, rollout_id)["state"] == "created"


def test_controls_that_do_not_fit_the_state_are_refused(world: World) -> None:
    rollout_id = create(world)
    with pytest.raises(Conflict):
        world.engine.run(lambda s: world.engine.control(s, world.admin, rollout_id, "pause", T0))
    start(world, rollout_id)
    with pytest.raises(Conflict):
        start(world, rollout_id)
    with pytest.raises(Conflict):
        world.engine.run(lambda s: world.engine.control(s, world.admin, rollout_id, "resume", T0))
    with pytest.raises(Invalid):
        world.engine.run(lambda s: world.engine.control(s, world.admin, rollout_id, "explode", T0))
    assert status(world, rollout_id)["state"] == "running"


# -- commands and reports ---------------------------------------------------------------------------


def test_each_device_gets_a_firmware_command_with_a_key_of_its_own(world: World) -> None:
    rollout_id = create(world)
    notify = start(world, rollout_id)
    assert len(notify) == 2 and set(notify) < set(world.devices)  # the first wave
    with transaction(world.sessions) as s:
        payloads = [firmware_command(s, d).payload for d in notify]
        keys = {p["key"] for p in payloads}
        assert len(keys) == 2 and all(len(base64.b64decode(str(k))) == 32 for k in keys)
        assert {p["op"] for p in payloads} == {"install"}
        assert {p["version"] for p in payloads} == {NEW}
        assert {p["rollout_id"] for p in payloads} == {rollout_id}
        downloads = {images.download_id_of(p["download"]) for p in payloads}
        rows = [s.get(FirmwareDownload, d) for d in downloads]
        assert sorted(r.device_id for r in rows if r) == sorted(notify)
    report(world, notify[0], T0 + dt.timedelta(minutes=1), ok=True, version=NEW)
    with transaction(world.sessions) as s:
        (command,) = [c for c in s.scalars(select(DeviceCommand)) if c.device_id == notify[0]]
        assert "key" not in command.payload  # wiped once reported
        download = s.get(FirmwareDownload, images.download_id_of(command.payload["download"]))
        assert download is not None and download.key is None


def test_a_bad_result_is_refused_without_touching_the_rollout(world: World) -> None:
    rollout_id = create(world)
    first = start(world, rollout_id)[0]
    with pytest.raises(Invalid) as refused:
        report(world, first, T0, ok="yes")
    assert refused.value.field == "result.ok"
    with pytest.raises(Invalid) as refused:
        report(world, first, T0, ok=False, reason="x" * 65)
    assert refused.value.field == "result.reason"
    assert status(world, rollout_id)["totals"]["in_progress"] == 2


def test_failures_reported_by_devices_pause_the_rollout_at_its_threshold(world: World) -> None:
    rollout_id = create(world, error_threshold={"count": 2})
    first, second = start(world, rollout_id)
    report(world, first, T0, ok=False, reason="bad-signature", detail="not ours")
    assert status(world, rollout_id)["state"] == "running"
    report(world, second, T0, ok=False, reason="bad-signature")
    result = status(world, rollout_id)
    assert result["state"] == "paused"
    assert result["reason"] == "wave 1 reached its error threshold (2 of 2 failed)"
    with transaction(world.sessions) as s:
        logged = s.scalars(
            select(OperationLogEntry).where(OperationLogEntry.action == "rollout.device_failed")
        )
        assert sorted(e.target or "" for e in logged) == sorted([first, second])


def test_an_alert_within_the_window_after_updating_fails_the_device(world: World) -> None:
    rollout_id = create(world, alert_window_minutes=30, error_threshold={"count": 1})
    first, _second = start(world, rollout_id)
    tick(world, T0)  # the engine notes the alerts that exist before
    report(world, first, T0 + dt.timedelta(minutes=2), ok=True, version=NEW)
    with transaction(world.sessions) as s:
        device = s.get(Device, first)
        assert device is not None
        alerts.raise_fault(s, device, "camera", "no picture", T0 + dt.timedelta(minutes=9))
    tick(world, T0 + dt.timedelta(minutes=10))
    result = status(world, rollout_id)
    assert result["state"] == "paused" and result["waves"][0]["failed"] == 1
    with transaction(world.sessions) as s:
        (failed,) = s.scalars(
            select(OperationLogEntry).where(OperationLogEntry.action == "rollout.device_failed")
        )
        assert "alert within 30 min after updating: fault camera" in failed.detail


def test_a_device_enrolled_after_the_start_joins_on_the_next_tick(world: World) -> None:
    rollout_id = create(world, waves=[{"percent": 100}])
    start(world, rollout_id)
    with transaction(world.sessions) as s:
        late = add_device(s, world.admin, world.site, 50, None)  # has not reported yet
    assert tick(world, T0 + dt.timedelta(seconds=1)) == []
    with transaction(world.sessions) as s:
        device = s.get(Device, late)
        assert device is not None
        device.firmware_version = OLD
    assert tick(world, T0 + dt.timedelta(seconds=2)) == [late]
    assert status(world, rollout_id)["totals"]["size"] == 11


def test_a_device_revoked_before_its_turn_fails_instead_of_waiting_forever(world: World) -> None:
    rollout_id = create(world, waves=[{"count": 1}, {"percent": 100}], error_threshold={"count": 9})
    (first,) = start(world, rollout_id)
    revoked = next(d for d in world.devices if d != first)
    with transaction(world.sessions) as s:
        fleet.undeploy_device(s, world.admin, revoked, T0)
    report(world, first, T0, ok=True, version=NEW)
    notify = tick(world, T0 + dt.timedelta(minutes=11))
    assert revoked not in notify and len(notify) == 8
    with transaction(world.sessions) as s:
        logged = s.scalars(
            select(OperationLogEntry).where(
                OperationLogEntry.action == "rollout.device_failed",
                OperationLogEntry.target == revoked,
            )
        )
        assert "device-not-enrolled" in next(iter(logged)).detail


def test_rollback_sends_every_updated_device_back_to_its_version(world: World) -> None:
    rollout_id = create(world)
    first, second = start(world, rollout_id)
    report(world, first, T0, ok=True, version=NEW)
    _, notify = world.engine.run(
        lambda s: world.engine.control(s, world.admin, rollout_id, "rollback", T0)
    )
    assert notify == [first]
    with transaction(world.sessions) as s:
        back = [c for c in commands.pending(s, first) if c.kind == "firmware"]
        assert [c.payload for c in back] == [
            {"op": "rollback", "rollout_id": rollout_id, "version": OLD}
        ]
    assert status(world, rollout_id)["state"] == "rolled_back"
    # the other device reports success later: it is sent back too
    assert report(world, second, T0 + dt.timedelta(minutes=1), ok=True, version=NEW) == [second]


# -- the journal -------------------------------------------------------------------------------------


def test_a_restarted_engine_rebuilds_every_rollout_from_its_journal(world: World) -> None:
    rollout_id = create(world, error_threshold={"count": 1})
    first, second = start(world, rollout_id)
    report(world, first, T0, ok=True, version=NEW)
    report(world, second, T0, ok=False, reason="install-failed")
    before = status(world, rollout_id)
    assert before["state"] == "paused"
    restarted = RolloutEngine(world.sessions, "us")  # a new process: nothing in memory
    again = restarted.run(lambda s: restarted.status(s, world.admin, rollout_id))[0]
    assert again == before
    _, notify = restarted.run(
        lambda s: restarted.control(
            s, world.admin, rollout_id, "resume", T0 + dt.timedelta(hours=1)
        )
    )
    # wave 1 cannot succeed; resume accepts that and goes on with the rest
    assert sorted(notify) == sorted(set(world.devices) - {first, second})


def test_a_planner_is_rebuilt_when_its_journal_entries_were_not_committed(world: World) -> None:
    rollout_id = create(world)
    first, _second = start(world, rollout_id)
    with pytest.raises(RuntimeError), transaction(world.sessions) as s:  # a failed commit
        job = world.engine.job(
            lambda s: world.engine.device_result(
                s, s.get(Device, first), firmware_command(s, first), {"ok": True}, T0
            )
        )
        job(s)
        raise RuntimeError("the commit failed")
    # the engine's cached planner had seen the success; the store has not: the store wins
    assert status(world, rollout_id)["totals"]["updated"] == 0
    with transaction(world.sessions) as s:
        kinds = [e.kind for e in s.scalars(select(RolloutEvent).order_by(RolloutEvent.id))]
    assert kinds == ["start"]
