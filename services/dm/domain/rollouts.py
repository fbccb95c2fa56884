"""Firmware rollouts in the DM service (DM-05): the sans-IO rollout planner, driven and persisted.

`RolloutEngine` holds one `RolloutPlanner` per rollout and feeds it what happens: an administrator's
start and controls, the devices' download and result reports, health alerts, newly deployed
devices and the passing of time (a tick from the API layer, read from the injectable clock). It
carries out the planner's actions inside the same transaction: a firmware command per device
(with a per-download key) queued for the command channel, the rollout's state, and one
operation-log line per step.

Every event the planner accepted is appended to the rollout's journal (`rollout_events`). The
planner is deterministic, so replaying the journal rebuilds it after a restart. Each cached planner
remembers the last journal entry it applied; when the store's journal ends elsewhere (a batch that
failed to commit, another process) the planner is rebuilt from the journal before use.

Engine work runs as jobs `fn(session)` under one lock: `job(fn)` makes one for a group committer
(the API runs every engine job on its writer thread, so many device reports share one commit), and
`run(fn)` runs one in a transaction of its own.

Replicas of a region (PostgreSQL) each run an engine on one store. Each rollout has one driver at a
time: a transaction locks the rollout's row (`SELECT ... FOR UPDATE`) before it reads the journal's
end or feeds the planner, and holds the lock until it commits, so a rollout's events are
serialized and its journal appends cannot interleave. A replica whose cached planner is behind the
journal rebuilds it after taking the lock. A firmware command is unique per (rollout, device,
operation) by a unique index as well, so no device is ever asked twice for the same step.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from protocol.dm_channel import ProgressStage
from protocol.firmware import compare_versions
from services.common import oplog
from services.common.clock import as_utc
from services.common.db import transaction
from services.common.errors import Conflict, Invalid, NotFound
from services.dm.domain import images
from services.dm.domain import rollout_planner as rp
from services.dm.domain.accounts import AdminIdentity
from services.dm.domain.commands import queue_rollout_command
from services.dm.domain.ids import new_id
from services.dm.store.models import (
    Alert,
    Device,
    DeviceCommand,
    FirmwareImage,
    OperationLogEntry,
    Rollout,
    RolloutEvent,
    Site,
)

T = TypeVar("T")
log = logging.getLogger("roomtrust.dm.rollouts")
_LOCKED = "roomtrust_dm_rollouts_locked"  # session.info: the rollouts this transaction locked
ACTIVE_STATES = ("running", "paused")
PLAN_KEYS = (
    "image_id",
    "name",
    "target",
    "waves",
    "success_percent",
    "error_threshold",
    "on_error",
    "alert_window_minutes",
    "windows",
    "download_cap",
    "update_timeout_minutes",
)
TARGET_KEYS = ("models", "site_ids", "versions", "tags")
MAX_WAVES = 20
RESULT_REASON_CHARS = 64
CONTROLS = ("pause", "resume", "abort", "rollback")


# -- the plan: checked administrator input, stored as JSON -------------------------------------


def _number(value: Any, field: str, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("must be a number", field=field)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise Invalid(f"must be {bound}", field=field)
    return float(value)


def _amount(value: Any, field: str) -> dict[str, float | int]:
    if not isinstance(value, dict) or set(value) not in ({"count"}, {"percent"}):
        raise Invalid('give {"count": N} or {"percent": P}', field=field)
    if "count" in value:
        count = value["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise Invalid("a count is a whole number of at least 1", field=f"{field}.count")
        return {"count": count}
    percent = _number(value["percent"], f"{field}.percent", minimum=0, maximum=100)
    if percent <= 0:
        raise Invalid("a percentage is above 0", field=f"{field}.percent")
    return {"percent": percent}


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid("must be a list of names", field=field)
    return sorted(set(value))


def _clock_time(value: Any, field: str) -> str:
    try:
        parsed = dt.time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise Invalid("must be a local time like 02:00", field=field)
    return parsed.strftime("%H:%M")


def check_plan(
    session: Session, admin: AdminIdentity, body: Mapping[str, Any]
) -> tuple[FirmwareImage, dict[str, Any]]:
    """The image and the normalised plan of a rollout request; Invalid names the bad field."""
    unknown = sorted(set(body) - set(PLAN_KEYS))
    if unknown:
        raise Invalid(f"a rollout plan has only: {', '.join(PLAN_KEYS)}", field=unknown[0])
    image = images.own_image(session, admin, body.get("image_id"))
    name = body.get("name") or f"{image.model} {image.version}"
    if not isinstance(name, str) or len(name) > 100:
        raise Invalid("a name is text of at most 100 characters", field="name")
    target_in = body.get("target") or {}
    if not isinstance(target_in, dict):
        raise Invalid("target is an object", field="target")
    bad = sorted(set(target_in) - set(TARGET_KEYS))
    if bad:
        raise Invalid(f"target can name only {', '.join(TARGET_KEYS)}", field=f"target.{bad[0]}")
    target = {k: _strings(target_in.get(k, []), f"target.{k}") for k in TARGET_KEYS}
    if target["models"] and target["models"] != [image.model]:
        raise Invalid(f"the image is for {image.model} only", field="target.models")
    target["models"] = [image.model]
    for site_id in target["site_ids"]:
        site = session.get(Site, site_id)
        if site is None or site.enterprise_id != admin.enterprise_id:
            raise Invalid(f"no site {site_id!r} in this enterprise", field="target.site_ids")
    for version in target["versions"]:
        try:
            compare_versions(version, version)
        except Invalid:
            raise Invalid(f"{version!r} is not a version", field="target.versions") from None
    waves = body.get("waves")
    if not isinstance(waves, list) or not 1 <= len(waves) <= MAX_WAVES:
        raise Invalid(f"give 1 to {MAX_WAVES} waves", field="waves")
    plan: dict[str, Any] = {
        "image_id": image.id,
        "name": name,
        "target": target,
        "waves": [_amount(w, f"waves[{i}]") for i, w in enumerate(waves)],
        "success_percent": _number(
            body.get("success_percent", 100), "success_percent", minimum=0, maximum=100
        ),
        "error_threshold": _amount(body.get("error_threshold", {"count": 1}), "error_threshold"),
        "on_error": body.get("on_error", "pause"),
        "alert_window_minutes": _number(
            body.get("alert_window_minutes", 10), "alert_window_minutes", minimum=0
        ),
        "windows": [],
        "download_cap": None,
        "update_timeout_minutes": None,
    }
    if plan["on_error"] not in ("pause", "abort"):
        raise Invalid("on_error is pause or abort", field="on_error")
    windows = body.get("windows") or []
    if not isinstance(windows, list):
        raise Invalid("windows is a list", field="windows")
    for i, window in enumerate(windows):
        field = f"windows[{i}]"
        if not isinstance(window, dict) or not {"start", "end"} <= set(window):
            raise Invalid('a window is {"start": "02:00", "end": "04:00"}', field=field)
        extra = sorted(set(window) - {"start", "end", "weekdays"})
        if extra:
            raise Invalid("a window has start, end and weekdays", field=f"{field}.{extra[0]}")
        days = window.get("weekdays", list(range(7)))
        if not isinstance(days, list) or not days or not all(d in range(7) for d in days):
            raise Invalid("weekdays are 0 (Monday) to 6", field=f"{field}.weekdays")
        plan["windows"].append(
            {
                "start": _clock_time(window["start"], f"{field}.start"),
                "end": _clock_time(window["end"], f"{field}.end"),
                "weekdays": sorted(set(days)),
            }
        )
    if body.get("download_cap") is not None:
        cap = body["download_cap"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise Invalid("the download cap is a whole number of at least 1", field="download_cap")
        plan["download_cap"] = cap
    if body.get("update_timeout_minutes") is not None:
        plan["update_timeout_minutes"] = _number(
            body["update_timeout_minutes"], "update_timeout_minutes", minimum=0.1
        )
    build_plan("check", image.version, plan)  # the planner's own rules, e.g. the success share
    return image, plan


def build_plan(rollout_id: str, version: str, plan: Mapping[str, Any]) -> rp.RolloutPlan:
    def amount(spec: Mapping[str, Any]) -> rp.Amount:
        return rp.Amount(count=spec.get("count"), percent=spec.get("percent"))

    target = plan["target"]
    timeout = plan.get("update_timeout_minutes")
    return rp.RolloutPlan(
        rollout_id=rollout_id,
        image_id=str(plan["image_id"]),
        version=version,
        target=rp.TargetFilter(
            models=frozenset(target["models"]),
            site_ids=frozenset(target["site_ids"]),
            versions=frozenset(target["versions"]),
            tags=frozenset(target["tags"]),
        ),
        waves=tuple(amount(w) for w in plan["waves"]),
        success_percent=float(plan["success_percent"]),
        error_threshold=amount(plan["error_threshold"]),
        on_error=plan["on_error"],
        alert_window=dt.timedelta(minutes=float(plan["alert_window_minutes"])),
        windows=tuple(
            rp.MaintenanceWindow(
                dt.time.fromisoformat(w["start"]),
                dt.time.fromisoformat(w["end"]),
                frozenset(w["weekdays"]),
            )
            for w in plan["windows"]
        ),
        download_cap=plan.get("download_cap"),
        update_timeout=dt.timedelta(minutes=float(timeout)) if timeout is not None else None,
    )


# -- the journal: planner events as JSON --------------------------------------------------------


def _info_row(d: rp.DeviceInfo) -> list[Any]:
    return [d.device_id, d.model, d.site_id, d.time_zone, d.region, d.version, sorted(d.tags)]


def _info(row: list[Any]) -> rp.DeviceInfo:
    return rp.DeviceInfo(row[0], row[1], row[2], row[3], row[4], row[5], frozenset(row[6]))


def encode_event(event: rp.Event) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"now": event.now.isoformat()}
    match event:
        case rp.Start():
            body |= {"by": event.by, "devices": [_info_row(d) for d in event.devices]}
            return "start", body
        case rp.Tick():
            return "tick", body
        case rp.DeviceJoined():
            return "joined", body | {"device": _info_row(event.device)}
        case rp.DownloadStarted():
            return "download_started", body | {"device_id": event.device_id}
        case rp.DownloadFinished():
            return "download_finished", body | {"device_id": event.device_id}
        case rp.UpdateSucceeded():
            return "succeeded", body | {"device_id": event.device_id}
        case rp.UpdateFailed():
            return "failed", body | {"device_id": event.device_id, "reason": event.reason}
        case rp.AlertRaised():
            return "alert", body | {"device_id": event.device_id, "detail": event.detail}
        case rp.Pause() | rp.Resume() | rp.Abort() | rp.Rollback():
            return type(event).__name__.lower(), body | {"by": event.by}
    raise TypeError(f"not a planner event: {event!r}")


_CONTROL_EVENTS: dict[str, type[rp.Pause | rp.Resume | rp.Abort | rp.Rollback]] = {
    "pause": rp.Pause,
    "resume": rp.Resume,
    "abort": rp.Abort,
    "rollback": rp.Rollback,
}


def decode_event(kind: str, body: Mapping[str, Any]) -> rp.Event:
    now = dt.datetime.fromisoformat(body["now"])
    match kind:
        case "start":
            return rp.Start(now, tuple(_info(r) for r in body["devices"]), body["by"])
        case "tick":
            return rp.Tick(now)
        case "joined":
            return rp.DeviceJoined(now, _info(body["device"]))
        case "download_started":
            return rp.DownloadStarted(now, body["device_id"])
        case "download_finished":
            return rp.DownloadFinished(now, body["device_id"])
        case "succeeded":
            return rp.UpdateSucceeded(now, body["device_id"])
        case "failed":
            return rp.UpdateFailed(now, body["device_id"], body["reason"])
        case "alert":
            return rp.AlertRaised(now, body["device_id"], body["detail"])
        case _ if kind in _CONTROL_EVENTS:
            return _CONTROL_EVENTS[kind](now, body["by"])
    raise ValueError(f"unknown journal event {kind!r}")


# -- the engine ----------------------------------------------------------------------------------


class RolloutEngine:
    """Drives every rollout of one region. Call its methods only inside `run()` or a `job()`."""

    def __init__(self, sessions: sessionmaker[Session], region: str) -> None:
        self.sessions = sessions
        self.region = region
        self.lock = threading.RLock()
        self._planners: dict[str, tuple[rp.RolloutPlanner, int]] = {}  # with its journal mark
        self._considered: dict[str, set[str]] = {}  # device ids each planner has been shown
        self._active: set[str] | None = None  # running or paused rollouts
        self._alert_mark: int | None = None  # the newest alert already fed to the planners
        self._touched: set[str] = set()
        self._notify: list[str] = []
        self._hold: list[object] = []  # rows this job loaded: keeps them in the identity map

    # -- jobs -----------------------------------------------------------------------------------

    def job(self, fn: Callable[[Session], T]) -> Callable[[Session], tuple[T, list[str]]]:
        """`fn` as a job for a group committer: returns its result and the devices that have new
        commands to deliver (once the batch is committed)."""

        def run(session: Session) -> tuple[T, list[str]]:
            with self.lock:
                self._touched.clear()
                self._notify = []
                try:
                    result = fn(session)
                except BaseException:
                    self._forget_touched()
                    raise
                finally:
                    self._hold.clear()
                for rollout_id in self._touched:  # finished ones: the journal keeps them
                    cached = self._planners.get(rollout_id)
                    if cached is not None and cached[0].state not in ACTIVE_STATES:
                        del self._planners[rollout_id]
                        self._considered.pop(rollout_id, None)
                return result, list(dict.fromkeys(self._notify))

        return run

    def run(self, fn: Callable[[Session], T]) -> tuple[T, list[str]]:
        """Run `fn` as a job in a transaction of its own."""
        try:
            with transaction(self.sessions) as session:
                return self.job(fn)(session)
        except BaseException:
            with self.lock:
                self._forget_touched()
            raise

    def _forget_touched(self) -> None:
        for rollout_id in self._touched:
            self._planners.pop(rollout_id, None)
            self._considered.pop(rollout_id, None)
        self._active = None

    # -- administrators ---------------------------------------------------------------------------

    def create(
        self, session: Session, admin: AdminIdentity, body: Mapping[str, Any], now: dt.datetime
    ) -> Rollout:
        image, plan = check_plan(session, admin, body)
        row = Rollout(
            id=new_id(),
            enterprise_id=admin.enterprise_id,
            image_id=image.id,
            name=plan.pop("name"),
            plan=plan,
            state="created",
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        oplog.record(
            session,
            OperationLogEntry,
            at=now,
            actor=admin.email,
            action="rollout.create",
            enterprise_id=admin.enterprise_id,
            target=row.id,
            image=image.id,
            model=image.model,
            version=image.version,
            waves=len(plan["waves"]),
        )
        return row

    def start(
        self, session: Session, admin: AdminIdentity, rollout_id: str, now: dt.datetime
    ) -> Rollout:
        row = self._own(session, admin, rollout_id, lock=True)
        if row.state != "created":
            raise Conflict(f"the rollout is {row.state}; only a created one starts", field="state")
        devices = [self._info(d, tz) for d, tz in self._candidates(session, row.enterprise_id)]
        row.started_at = now
        self._feed(session, row, rp.Start(now, tuple(devices), by=admin.email))
        self._considered[row.id] = {d.device_id for d in devices}
        return row

    def control(
        self, session: Session, admin: AdminIdentity, rollout_id: str, op: str, now: dt.datetime
    ) -> Rollout:
        if op not in CONTROLS:
            raise Invalid(f"a control is one of {', '.join(CONTROLS)}", field="op")
        row = self._own(session, admin, rollout_id, lock=True)
        if row.state == "created":
            raise Conflict("the rollout has not started", field="state")
        self._feed(session, row, _CONTROL_EVENTS[op](now, by=admin.email))
        return row

    def list_rollouts(self, session: Session, admin: AdminIdentity) -> list[dict[str, Any]]:
        rows = session.scalars(
            select(Rollout)
            .where(Rollout.enterprise_id == admin.enterprise_id)
            .order_by(Rollout.created_at)
        )
        return [self.status_of(session, row) for row in rows]

    def status(self, session: Session, admin: AdminIdentity, rollout_id: str) -> dict[str, Any]:
        return self.status_of(session, self._own(session, admin, rollout_id))

    def status_of(self, session: Session, row: Rollout) -> dict[str, Any]:
        image = session.get(FirmwareImage, row.image_id)
        assert image is not None
        cached = row.id in self._planners
        planner = self._planner(session, row)
        if not cached and row.state not in ACTIVE_STATES:
            self._planners.pop(row.id, None)  # a finished rollout, only looked at: keep no copy
            self._considered.pop(row.id, None)
        waves = [
            {
                "wave": w.wave,
                "state": w.state,
                "size": w.size,
                "waiting": w.waiting,
                "in_progress": w.in_progress,
                "updated": w.updated,
                "failed": w.failed,
                "rolled_back": w.rolled_back,
                "cancelled": w.cancelled,
                "percent_updated": round(w.percent_updated, 2),
            }
            for w in planner.progress()
        ]
        totals = {
            key: sum(int(w[key]) for w in waves)
            for key in ("size", "waiting", "in_progress", "updated", "failed")
        }
        return {
            "rollout_id": row.id,
            "name": row.name,
            "image": images.image_dict(image),
            "state": row.state,
            "reason": row.reason,
            "created_at": as_utc(row.created_at).isoformat(),
            "started_at": as_utc(row.started_at).isoformat() if row.started_at else None,
            "updated_at": as_utc(row.updated_at).isoformat(),
            "plan": row.plan,
            "waves": waves,
            "totals": totals,
        }

    # -- devices ----------------------------------------------------------------------------------

    def download_started(
        self, session: Session, device_id: str, download_id: str, now: dt.datetime
    ) -> None:
        """The device fetched its download: record when, and tell its rollout."""
        download = images.mark_downloaded(session, download_id, now)
        row = (
            self._locked(session, download.rollout_id) if download and download.rollout_id else None
        )
        if row is not None:
            self._feed(session, row, rp.DownloadStarted(now, device_id))

    def device_progress(
        self,
        session: Session,
        device: Device,
        command: DeviceCommand,
        stage: Any,
        now: dt.datetime,
    ) -> None:
        """A device's progress message on a firmware command: `downloaded` frees its slot."""
        if stage != ProgressStage.DOWNLOADED:
            raise Invalid("the only progress stage is downloaded", field="stage")
        row = self._rollout_of(session, command)
        if row is not None:
            self._feed(session, row, rp.DownloadFinished(now, device.id))

    def device_result(
        self,
        session: Session,
        device: Device,
        command: DeviceCommand,
        result: Mapping[str, Any],
        now: dt.datetime,
    ) -> None:
        """A device acknowledged a firmware command with the outcome of the update."""
        ok = result.get("ok")
        if not isinstance(ok, bool):
            raise Invalid("a firmware result says ok: true or false", field="result.ok")
        reason = result.get("reason", "")
        if not ok and (not isinstance(reason, str) or not 0 < len(reason) <= RESULT_REASON_CHARS):
            raise Invalid("a failed update gives a short reason code", field="result.reason")
        payload = dict(command.payload)
        images.finish_download(session, images.download_id_of(payload.get("download")))
        if "key" in payload:
            payload.pop("key")
            command.payload = payload
        if payload.get("op") != "install":
            return
        row = self._rollout_of(session, command)
        if row is not None:
            event: rp.Event = (
                rp.UpdateSucceeded(now, device.id)
                if ok
                else rp.UpdateFailed(now, device.id, str(reason))
            )
            self._feed(session, row, event)

    # -- time ---------------------------------------------------------------------------------------

    def tick(self, session: Session, now: dt.datetime) -> None:
        """Let time pass for every active rollout: new alerts, late joiners, windows, waves."""
        self._active = None  # another replica may have started or finished one
        active = self._active_ids(session)
        newest = session.scalar(select(func.max(Alert.id))) or 0
        if self._alert_mark is None:
            self._alert_mark = newest
        alerts: list[Alert] = []
        if newest > self._alert_mark:
            alerts = list(
                session.scalars(
                    select(Alert)
                    .where(Alert.id > self._alert_mark, Alert.id <= newest)
                    .order_by(Alert.id)
                )
            )
        self._alert_mark = newest
        for rollout_id in sorted(active):
            row = self._locked(session, rollout_id)
            if row is None or row.state not in ACTIVE_STATES:
                continue
            planner = self._planner(session, row)
            considered = self._considered.setdefault(row.id, set())
            for device, time_zone in self._candidates(session, row.enterprise_id, considered):
                considered.add(device.id)
                self._feed(session, row, rp.DeviceJoined(now, self._info(device, time_zone)))
            for alert in alerts:
                if alert.enterprise_id == row.enterprise_id and planner.device_status(
                    alert.device_id
                ):
                    detail = f"{alert.rule} {alert.component or ''}".strip()
                    raised = as_utc(alert.raised_at)
                    self._feed(session, row, rp.AlertRaised(raised, alert.device_id, detail))
            self._feed(session, row, rp.Tick(now))

    # -- inside ----------------------------------------------------------------------------------

    def _own(
        self, session: Session, admin: AdminIdentity, rollout_id: str, *, lock: bool = False
    ) -> Rollout:
        row = self._locked(session, rollout_id) if lock else session.get(Rollout, rollout_id)
        if row is None or row.enterprise_id != admin.enterprise_id:
            raise NotFound("no such rollout in this enterprise", field="rollout_id")
        return row

    def _rollout_of(self, session: Session, command: DeviceCommand) -> Rollout | None:
        rollout_id = command.payload.get("rollout_id")
        return self._locked(session, rollout_id) if isinstance(rollout_id, str) else None

    def _locked(self, session: Session, rollout_id: str) -> Rollout | None:
        """The rollout's row, locked until this transaction ends and read after the lock, so its
        state is what the last driver committed (on SQLite the one process is the only driver)."""
        locked: set[str] = session.info.setdefault(_LOCKED, set())
        if rollout_id in locked or session.get_bind().dialect.name != "postgresql":
            return session.get(Rollout, rollout_id)
        session.flush()
        row = session.scalars(
            select(Rollout)
            .where(Rollout.id == rollout_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        locked.add(rollout_id)
        return row

    def _candidates(
        self, session: Session, enterprise_id: str, skip: set[str] | None = None
    ) -> list[tuple[Device, str]]:
        """Enrolled devices of the enterprise that have reported their firmware version (those in
        `skip` left out, looked up by id first, so a tick with nothing new stays cheap)."""
        ready = (
            Device.enterprise_id == enterprise_id,
            Device.state == "enrolled",
            Device.firmware_version.is_not(None),
        )
        query = select(Device, Site.time_zone).join(Site, Site.id == Device.site_id)
        if skip is not None:
            ids = set(session.scalars(select(Device.id).where(*ready))) - skip
            if not ids:
                return []
            query = query.where(Device.id.in_(ids))
        rows = session.execute(query.where(*ready).order_by(Device.deployed_at, Device.id))
        found = [(device, time_zone) for device, time_zone in rows.tuples()]
        self._hold.extend(device for device, _ in found)
        return found

    def _info(self, device: Device, time_zone: str) -> rp.DeviceInfo:
        return rp.DeviceInfo(
            device.id,
            device.model,
            device.site_id,
            time_zone,
            self.region,
            device.firmware_version or "",
            frozenset(device.tags or ()),
        )

    def _active_ids(self, session: Session) -> set[str]:
        if self._active is None:
            self._active = set(
                session.scalars(select(Rollout.id).where(Rollout.state.in_(ACTIVE_STATES)))
            )
        return self._active

    def _journal_end(self, session: Session, rollout_id: str) -> int:
        end = session.scalar(
            select(func.max(RolloutEvent.id)).where(RolloutEvent.rollout_id == rollout_id)
        )
        return end or 0

    def _planner(self, session: Session, row: Rollout) -> rp.RolloutPlanner:
        cached = self._planners.get(row.id)
        if cached is not None and cached[1] == self._journal_end(session, row.id):
            return cached[0]
        image = session.get(FirmwareImage, row.image_id)
        assert image is not None
        planner = rp.RolloutPlanner(build_plan(row.id, image.version, row.plan))
        considered: set[str] = set()
        mark = 0
        for entry in session.scalars(
            select(RolloutEvent).where(RolloutEvent.rollout_id == row.id).order_by(RolloutEvent.id)
        ):
            event = decode_event(entry.kind, entry.body)
            planner.handle(event)
            mark = entry.id
            if isinstance(event, rp.Start):
                considered |= {d.device_id for d in event.devices}
            elif isinstance(event, rp.DeviceJoined):
                considered.add(event.device.device_id)
        self._planners[row.id] = (planner, mark)
        self._considered[row.id] = considered
        return planner

    def _feed(self, session: Session, row: Rollout, event: rp.Event) -> None:
        """Hand one event to the rollout's planner, journal it, and carry out its actions."""
        self._locked(session, row.id)  # one driver per rollout: before the journal's end is read
        queue: deque[rp.Event] = deque([event])
        while queue:
            event = queue.popleft()
            planner = self._planner(session, row)
            self._touched.add(row.id)
            actions = planner.handle(event)
            kind, body = encode_event(event)
            if actions or kind not in ("tick", "alert", "joined"):
                entry = RolloutEvent(rollout_id=row.id, kind=kind, body=body, at=event.now)
                session.add(entry)
                session.flush()
                self._planners[row.id] = (planner, entry.id)
            for action in actions:
                queue.extend(self._carry_out(session, row, action, event.now))
            if actions or row.state != planner.state:
                row.state = planner.state
                row.updated_at = event.now
            if self._active is not None:
                if planner.state in ACTIVE_STATES:
                    self._active.add(row.id)
                else:
                    self._active.discard(row.id)

    def _carry_out(
        self, session: Session, row: Rollout, action: rp.Action, now: dt.datetime
    ) -> list[rp.Event]:
        """Perform one planner action; returns follow-up events (a device that cannot update)."""
        match action:
            case rp.StartUpdate():
                device = session.get(Device, action.device_id)
                if device is None or device.state != "enrolled":
                    return [rp.UpdateFailed(now, action.device_id, "device-not-enrolled")]
                image = session.get(FirmwareImage, row.image_id)
                assert image is not None
                self._hold.append(image)
                download, key = images.new_download(session, device, image, row.id, now)
                payload = images.install_payload(download, image, key, row.id)
                if queue_rollout_command(session, device, row.id, "install", payload, now):
                    self._notify.append(device.id)
                else:  # the step was taken already: the unique index keeps it to one command
                    session.delete(download)
                    log.warning("rollout %s: install on %s was queued already", row.id, device.id)
            case rp.RollbackDevice():
                device = session.get(Device, action.device_id)
                if device is not None and device.state == "enrolled":
                    payload = {"op": "rollback", "rollout_id": row.id, "version": action.version}
                    if queue_rollout_command(session, device, row.id, "rollback", payload, now):
                        self._notify.append(device.id)
            case rp.RolloutPaused() | rp.RolloutAborted():
                row.reason = action.reason
            case rp.RolloutResumed():
                row.reason = None
            case rp.LogStep():
                detail: dict[str, Any] = dict(action.detail)
                if action.target != row.id:
                    detail["rollout"] = row.id
                oplog.record(
                    session,
                    OperationLogEntry,
                    at=action.at,
                    actor=action.actor,
                    action=action.action,
                    enterprise_id=row.enterprise_id,
                    target=action.target,
                    **detail,
                )
            case rp.WaveStarted() | rp.RolloutCompleted():
                pass
        return []
