"""The sans-IO rollout planner: staged firmware rollouts as events in, actions out (DM-05).

The DM service and the simulator drive the same planner. It never reads a clock or touches the
network: every event carries `now`, and every action is a plain record the driver carries out
(send a firmware command, write an operation-log line). See docs/rollout-planner.md.

Rules, in short:
- targets are the devices matching a filter (model, site, current version, tags) that run an older
  version than the image;
- they are split into waves by count or percentage; the last wave takes every device left over, and
  devices deployed while the rollout runs ("late joiners") join it;
- a wave is done when its success condition holds: that share of its devices updated and stayed
  free of alerts for the alert window; then the next wave starts;
- a failure (failed update, timeout, or an alert within the alert window after updating) counts
  against its wave's error threshold (count or %), which pauses or aborts the rollout;
- an update starts only inside a maintenance window in the device's own time zone, and only while
  its region has fewer downloads running than the cap;
- an administrator can pause, resume, abort and roll back.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.firmware import compare_versions
from services.common.errors import Conflict, Invalid

# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    model: str
    site_id: str
    time_zone: str  # the device's site time zone
    region: str
    version: str  # the firmware version it runs now
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TargetFilter:
    """Empty sets match anything; `tags` must all be on the device."""

    models: frozenset[str] = frozenset()
    site_ids: frozenset[str] = frozenset()
    versions: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    def matches(self, device: DeviceInfo) -> bool:
        return (
            (not self.models or device.model in self.models)
            and (not self.site_ids or device.site_id in self.site_ids)
            and (not self.versions or device.version in self.versions)
            and self.tags <= device.tags
        )


@dataclass(frozen=True, slots=True)
class Amount:
    """A number of devices, given either as a count or as a percentage of a total."""

    count: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.percent is None):
            raise Invalid("give either a count or a percentage", "amount")
        if self.count is not None and self.count < 1:
            raise Invalid("a count is at least 1", "count")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise Invalid("a percentage is above 0 and at most 100", "percent")

    def of(self, total: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.ceil(total * self.percent / 100)

    def reached_by(self, failures: int, total: int) -> bool:
        if self.count is not None:
            return failures >= self.count
        assert self.percent is not None
        return failures > 0 and failures * 100 >= self.percent * total


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Local wall-clock hours; `end <= start` runs past midnight. `weekdays` (Monday 0) name the
    day the window opens."""

    start: dt.time
    end: dt.time
    weekdays: frozenset[int] = frozenset(range(7))

    def is_open(self, local: dt.datetime) -> bool:
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end and local.weekday() in self.weekdays
        if clock >= self.start:
            return local.weekday() in self.weekdays
        return clock < self.end and (local.weekday() - 1) % 7 in self.weekdays


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    rollout_id: str
    image_id: str
    version: str
    target: TargetFilter
    waves: tuple[Amount, ...]
    success_percent: float = 100.0
    error_threshold: Amount = Amount(count=1)
    on_error: Literal["pause", "abort"] = "pause"
    alert_window: dt.timedelta = dt.timedelta(minutes=10)
    windows: tuple[MaintenanceWindow, ...] = ()  # none: any time
    download_cap: int | None = None  # running downloads per region
    update_timeout: dt.timedelta | None = None  # a device silent this long has failed

    def __post_init__(self) -> None:
        if not self.waves:
            raise Invalid("a rollout needs at least one wave", "waves")
        if not 0 < self.success_percent <= 100:
            raise Invalid("the success condition is a percentage above 0", "success_percent")
        if self.on_error not in ("pause", "abort"):
            raise Invalid("on_error is 'pause' or 'abort'", "on_error")
        if self.download_cap is not None and self.download_cap < 1:
            raise Invalid("the download cap is at least 1", "download_cap")
        if self.alert_window < dt.timedelta(0):
            raise Invalid("the alert window cannot be negative", "alert_window")
        compare_versions(self.version, self.version)


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    now: dt.datetime
    devices: tuple[DeviceInfo, ...]
    by: str = "admin"


@dataclass(frozen=True, slots=True)
class Tick:
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class DeviceJoined:
    now: dt.datetime
    device: DeviceInfo


@dataclass(frozen=True, slots=True)
class DownloadStarted:
    now: dt.datetime
    device_id: str


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    """Frees the device's download slot before it reports the result of installing."""

    now: dt.datetime
    device_id: str


@dataclass(frozen=True, slots=True)
class UpdateSucceeded:
    now: dt.datetime
    device_id: str


@dataclass(frozen=True, slots=True)
class UpdateFailed:
    now: dt.datetime
    device_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AlertRaised:
    now: dt.datetime
    device_id: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Pause:
    now: dt.datetime
    by: str = "admin"


@dataclass(frozen=True, slots=True)
class Resume:
    now: dt.datetime
    by: str = "admin"


@dataclass(frozen=True, slots=True)
class Abort:
    now: dt.datetime
    by: str = "admin"


@dataclass(frozen=True, slots=True)
class Rollback:
    now: dt.datetime
    by: str = "admin"


Event = (
    Start
    | Tick
    | DeviceJoined
    | DownloadStarted
    | DownloadFinished
    | UpdateSucceeded
    | UpdateFailed
    | AlertRaised
    | Pause
    | Resume
    | Abort
    | Rollback
)

# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartUpdate:
    device_id: str
    image_id: str
    version: str


@dataclass(frozen=True, slots=True)
class RollbackDevice:
    device_id: str
    version: str  # the version the device ran before this rollout


@dataclass(frozen=True, slots=True)
class WaveStarted:
    wave: int  # 1-based
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RolloutPaused:
    reason: str


@dataclass(frozen=True, slots=True)
class RolloutResumed:
    pass


@dataclass(frozen=True, slots=True)
class RolloutAborted:
    reason: str


@dataclass(frozen=True, slots=True)
class RolloutCompleted:
    pass


@dataclass(frozen=True, slots=True)
class LogStep:
    """One operation-log line: `oplog.record(at=, actor=, action=, target=, **detail)`."""

    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: Mapping[str, str] = field(default_factory=dict)


Action = (
    StartUpdate
    | RollbackDevice
    | WaveStarted
    | RolloutPaused
    | RolloutResumed
    | RolloutAborted
    | RolloutCompleted
    | LogStep
)

RolloutState = Literal["created", "running", "paused", "aborted", "completed", "rolled_back"]
DeviceStatus = Literal[
    "waiting", "sent", "downloading", "installing", "updated", "failed", "cancelled", "rolled_back"
]
_IN_FLIGHT: tuple[DeviceStatus, ...] = ("sent", "downloading", "installing")
NOT_MATCHING = "does not match the target filter"
UP_TO_DATE = "already runs this version or a newer one"
BAD_TIME_ZONE = "unknown time zone"
BAD_VERSION = "unreadable current version"
_SYSTEM = "rollout"


@dataclass(frozen=True, slots=True)
class WaveProgress:
    wave: int
    state: Literal["pending", "running", "done"]
    size: int
    waiting: int
    in_progress: int
    updated: int
    failed: int
    rolled_back: int
    cancelled: int

    @property
    def percent_updated(self) -> float:
        return 100.0 * self.updated / self.size if self.size else 100.0


@dataclass(slots=True)
class _Device:
    info: DeviceInfo
    wave: int  # 0-based index
    status: DeviceStatus = "waiting"
    holds_slot: bool = False
    new_version_installed: bool = False
    healthy: bool = False  # updated and alert-free for the whole alert window
    sent_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(slots=True)
class _Wave:
    device_ids: list[str] = field(default_factory=list)
    started: bool = False
    done: bool = False
    failures_accepted: bool = False  # set by Resume: a wave that cannot reach success goes on
    counts: dict[DeviceStatus, int] = field(default_factory=lambda: dict.fromkeys(_STATUSES, 0))
    healthy: int = 0


_STATUSES: tuple[DeviceStatus, ...] = (
    "waiting",
    "sent",
    "downloading",
    "installing",
    "updated",
    "failed",
    "cancelled",
    "rolled_back",
)


# -- the planner -------------------------------------------------------------------------------


class RolloutPlanner:
    """One rollout's state machine. The work per event is proportional to what the event changes:
    per-wave counters replace scans, devices waiting for a download slot or a window queue by
    (region, time zone), and the ends of alert windows and update timeouts sit in heaps ordered by
    time. Event times are expected not to go backwards."""

    def __init__(self, plan: RolloutPlan) -> None:
        self.plan = plan
        self.state: RolloutState = "created"
        self._devices: dict[str, _Device] = {}
        self._waves: list[_Wave] = [_Wave() for _ in plan.waves]
        self._slots: dict[str, int] = {}  # region -> downloads running
        # waiting devices of started waves, by (region, time zone), in wave order
        self._queues: dict[tuple[str, str], deque[str]] = {}
        self._alert_ends: list[tuple[dt.datetime, str]] = []  # (updated_at, device_id)
        self._timeouts: list[tuple[dt.datetime, str]] = []  # (sent_at, device_id)

    # -- queries --------------------------------------------------------------------------------

    def progress(self) -> tuple[WaveProgress, ...]:
        return tuple(self._wave_progress(index) for index in range(len(self._waves)))

    def device_status(self, device_id: str) -> DeviceStatus | None:
        device = self._devices.get(device_id)
        return device.status if device else None

    def downloads_running(self, region: str) -> int:
        return self._slots.get(region, 0)

    # -- events ---------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        if event.now.tzinfo is None:
            raise Invalid("event times must be timezone-aware", "now")
        actions: list[Action] = []
        match event:
            case Start():
                self._start(event, actions)
            case Tick():
                pass
            case DeviceJoined():
                self._join(event, actions)
            case DownloadStarted():
                self._download_started(event, actions)
            case DownloadFinished():
                device = self._devices.get(event.device_id)
                if device and device.status in _IN_FLIGHT:
                    self._set(device, "installing")
                    self._release_slot(device)
            case UpdateSucceeded():
                self._succeeded(event, actions)
            case UpdateFailed():
                device = self._devices.get(event.device_id)
                if device and device.status in _IN_FLIGHT:
                    self._fail(device, event.now, event.reason, actions)
            case AlertRaised():
                self._alert(event, actions)
            case Pause() | Resume() | Abort() | Rollback():
                self._control(event, actions)
        self._advance(event.now, actions)
        return actions

    def _start(self, event: Start, actions: list[Action]) -> None:
        if self.state != "created":
            raise Conflict("the rollout has already started", "state")
        targets = [d for d in event.devices if self._is_target(d, event.now, actions)]
        remaining = list(dict.fromkeys(d.device_id for d in targets))
        by_id = {d.device_id: d for d in targets}
        taken = 0
        for index, amount in enumerate(self.plan.waves):
            last = index == len(self.plan.waves) - 1
            left = len(remaining) - taken
            take = left if last else min(amount.of(len(targets)), left)
            for device_id in remaining[taken : taken + take]:
                self._add(by_id[device_id], index)
            taken += take
        self.state = "running"
        actions.append(
            self._log(
                event.now,
                "rollout.start",
                by=event.by,
                image=self.plan.image_id,
                version=self.plan.version,
                devices=str(len(targets)),
                waves=str(len(self._waves)),
            )
        )

    def _join(self, event: DeviceJoined, actions: list[Action]) -> None:
        if self.state not in ("running", "paused"):
            return
        device = event.device
        if device.device_id in self._devices or not self._is_target(device, event.now, actions):
            return
        self._add(device, len(self._waves) - 1)
        actions.append(
            self._log(
                event.now, "rollout.device_joined", device.device_id, wave=str(len(self._waves))
            )
        )

    def _download_started(self, event: DownloadStarted, actions: list[Action]) -> None:
        device = self._devices.get(event.device_id)
        if device and device.status == "sent":
            self._set(device, "downloading")
            actions.append(self._log(event.now, "rollout.download_started", device.info.device_id))

    def _succeeded(self, event: UpdateSucceeded, actions: list[Action]) -> None:
        device = self._devices.get(event.device_id)
        if device is None or device.sent_at is None or device.new_version_installed:
            return
        self._release_slot(device)
        device.new_version_installed = True
        device_id = device.info.device_id
        if self.state == "rolled_back":
            self._roll_back(device, event.now, actions)
        elif device.status in _IN_FLIGHT:
            self._set(device, "updated")
            device.updated_at = event.now
            heapq.heappush(self._alert_ends, (event.now, device_id))
            actions.append(
                self._log(event.now, "rollout.device_updated", device_id, version=self.plan.version)
            )
        else:  # a report after the update timeout: it stays counted as a failure
            actions.append(self._log(event.now, "rollout.late_success", device_id))

    def _alert(self, event: AlertRaised, actions: list[Action]) -> None:
        device = self._devices.get(event.device_id)
        if device is None or device.status != "updated" or device.updated_at is None:
            return
        since = event.now - device.updated_at
        if since < dt.timedelta(0) or since > self.plan.alert_window:
            return  # raised before the update, or after its alert window
        minutes = self.plan.alert_window.total_seconds() / 60
        reason = f"alert within {minutes:g} min after updating"
        if event.detail:
            reason += f": {event.detail}"
        self._fail(device, event.now, reason, actions)

    def _control(self, event: Pause | Resume | Abort | Rollback, actions: list[Action]) -> None:
        if self.state == "created":
            raise Conflict("the rollout has not started", "state")
        now, by = event.now, event.by
        match event:
            case Pause():
                if self.state != "running":
                    raise Conflict(f"a {self.state} rollout cannot be paused", "state")
                self._pause(now, f"paused by {by}", actions, by=by)
            case Resume():
                if self.state != "paused":
                    raise Conflict(f"a {self.state} rollout cannot be resumed", "state")
                self.state = "running"
                for wave in self._waves:
                    wave.failures_accepted = wave.started
                actions += [RolloutResumed(), self._log(now, "rollout.resume", by=by)]
            case Abort():
                if self.state not in ("running", "paused"):
                    raise Conflict(f"a {self.state} rollout cannot be aborted", "state")
                self._abort(now, f"aborted by {by}", actions, by=by)
            case Rollback():
                if self.state == "rolled_back":
                    raise Conflict("the rollout is already rolled back", "state")
                self.state = "rolled_back"
                actions.append(self._log(now, "rollout.rollback", by=by))
                for device in self._devices.values():
                    if device.status == "waiting":
                        self._set(device, "cancelled")
                    elif device.new_version_installed and device.status != "rolled_back":
                        self._roll_back(device, now, actions)

    # -- state changes --------------------------------------------------------------------------

    def _is_target(self, device: DeviceInfo, now: dt.datetime, actions: list[Action]) -> bool:
        reason = skip_reason(self.plan, device)
        if reason in (BAD_TIME_ZONE, BAD_VERSION):
            actions.append(self._log(now, "rollout.skip", device.device_id, reason=reason))
        return reason is None

    def _add(self, info: DeviceInfo, wave_index: int) -> None:
        device = _Device(info, wave_index)
        self._devices[info.device_id] = device
        wave = self._waves[wave_index]
        wave.device_ids.append(info.device_id)
        wave.counts["waiting"] += 1
        wave.done = False
        if wave.started:
            self._enqueue(device)

    def _enqueue(self, device: _Device) -> None:
        key = (device.info.region, device.info.time_zone)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(device.info.device_id)

    def _set(self, device: _Device, status: DeviceStatus) -> None:
        wave = self._waves[device.wave]
        wave.counts[device.status] -= 1
        wave.counts[status] += 1
        device.status = status
        if device.healthy and status != "updated":
            device.healthy = False
            wave.healthy -= 1

    def _fail(self, device: _Device, now: dt.datetime, reason: str, actions: list[Action]) -> None:
        self._release_slot(device)
        self._set(device, "failed")
        actions.append(
            self._log(now, "rollout.device_failed", device.info.device_id, reason=reason)
        )
        wave = self._waves[device.wave]
        failures, size = wave.counts["failed"], len(wave.device_ids)
        if self.state == "running" and self.plan.error_threshold.reached_by(failures, size):
            why = (
                f"wave {device.wave + 1} reached its error threshold ({failures} of {size} failed)"
            )
            if self.plan.on_error == "abort":
                self._abort(now, why, actions)
            else:
                self._pause(now, why, actions)

    def _pause(
        self, now: dt.datetime, reason: str, actions: list[Action], by: str = _SYSTEM
    ) -> None:
        self.state = "paused"
        actions += [RolloutPaused(reason), self._log(now, "rollout.pause", by=by, reason=reason)]

    def _abort(
        self, now: dt.datetime, reason: str, actions: list[Action], by: str = _SYSTEM
    ) -> None:
        self.state = "aborted"
        for device in self._devices.values():
            if device.status == "waiting":
                self._set(device, "cancelled")
        self._queues.clear()
        actions += [RolloutAborted(reason), self._log(now, "rollout.abort", by=by, reason=reason)]

    def _roll_back(self, device: _Device, now: dt.datetime, actions: list[Action]) -> None:
        self._set(device, "rolled_back")
        previous = device.info.version
        actions += [
            RollbackDevice(device.info.device_id, previous),
            self._log(now, "rollout.device_rollback", device.info.device_id, version=previous),
        ]

    def _release_slot(self, device: _Device) -> None:
        if device.holds_slot:
            device.holds_slot = False
            self._slots[device.info.region] -= 1

    def _advance(self, now: dt.datetime, actions: list[Action]) -> None:
        self._end_alert_windows(now)
        if self.state in ("running", "paused"):
            self._time_out(now, actions)
        if self.state != "running":
            return
        for index, wave in enumerate(self._waves):
            if not wave.started:
                wave.started = True
                for device_id in wave.device_ids:
                    self._enqueue(self._devices[device_id])
                actions += [
                    WaveStarted(index + 1, tuple(wave.device_ids)),
                    self._log(now, "rollout.wave_start", wave=str(index + 1)),
                ]
            if not wave.done:
                self._check_wave(index, now, actions)
            if self.state != "running" or not wave.done:
                break
        if self.state == "running":
            self._dispatch(now, actions)
        if self.state == "running" and self._finished():
            self.state = "completed"
            updated = sum(w.counts["updated"] for w in self._waves)
            failed = sum(w.counts["failed"] for w in self._waves)
            actions += [
                RolloutCompleted(),
                self._log(now, "rollout.complete", updated=str(updated), failed=str(failed)),
            ]

    def _end_alert_windows(self, now: dt.datetime) -> None:
        """Devices updated longer than the alert window ago, still updated, are healthy now."""
        window, heap = self.plan.alert_window, self._alert_ends
        while heap and now - heap[0][0] > window:
            updated_at, device_id = heapq.heappop(heap)
            device = self._devices[device_id]
            if device.status == "updated" and device.updated_at == updated_at:
                device.healthy = True
                self._waves[device.wave].healthy += 1

    def _check_wave(self, index: int, now: dt.datetime, actions: list[Action]) -> None:
        wave = self._waves[index]
        size = len(wave.device_ids)
        if wave.healthy * 100 >= self.plan.success_percent * size:
            wave.done = True
            actions.append(self._log(now, "rollout.wave_done", wave=str(index + 1)))
            return
        if wave.counts["failed"] + wave.healthy < size:  # not settled yet
            return
        if wave.failures_accepted:
            wave.done = True
            actions.append(self._log(now, "rollout.wave_done", wave=str(index + 1), forced="yes"))
        else:
            self._pause(now, f"wave {index + 1} cannot reach its success condition", actions)

    def _dispatch(self, now: dt.datetime, actions: list[Action]) -> None:
        cap = self.plan.download_cap
        for (region, time_zone), queue in self._queues.items():
            if not queue:
                continue
            if cap is not None and self._slots.get(region, 0) >= cap:
                continue
            if not self._window_open(time_zone, now):
                continue
            while queue and (cap is None or self._slots.get(region, 0) < cap):
                device = self._devices[queue.popleft()]
                if device.status != "waiting":
                    continue
                self._set(device, "sent")
                device.sent_at, device.holds_slot = now, True
                self._slots[region] = self._slots.get(region, 0) + 1
                if self.plan.update_timeout is not None:
                    heapq.heappush(self._timeouts, (now, device.info.device_id))
                actions += [
                    StartUpdate(device.info.device_id, self.plan.image_id, self.plan.version),
                    self._log(
                        now,
                        "rollout.device_start",
                        device.info.device_id,
                        version=self.plan.version,
                    ),
                ]

    def _time_out(self, now: dt.datetime, actions: list[Action]) -> None:
        timeout, heap = self.plan.update_timeout, self._timeouts
        if timeout is None:
            return
        while heap and now - heap[0][0] >= timeout:
            sent_at, device_id = heapq.heappop(heap)
            device = self._devices[device_id]
            if device.status in _IN_FLIGHT and device.sent_at == sent_at:
                self._fail(device, now, "no result before the update timeout", actions)

    # -- helpers --------------------------------------------------------------------------------

    def _window_open(self, time_zone: str, now: dt.datetime) -> bool:
        if not self.plan.windows:
            return True
        local = now.astimezone(ZoneInfo(time_zone))
        return any(window.is_open(local) for window in self.plan.windows)

    def _finished(self) -> bool:
        return all(
            wave.done and wave.counts["failed"] + wave.healthy == len(wave.device_ids)
            for wave in self._waves
        )

    def _wave_progress(self, index: int) -> WaveProgress:
        wave = self._waves[index]
        counts = wave.counts
        state: Literal["pending", "running", "done"] = (
            "done" if wave.done else "running" if wave.started else "pending"
        )
        return WaveProgress(
            wave=index + 1,
            state=state,
            size=len(wave.device_ids),
            waiting=counts["waiting"],
            in_progress=sum(counts[s] for s in _IN_FLIGHT),
            updated=counts["updated"],
            failed=counts["failed"],
            rolled_back=counts["rolled_back"],
            cancelled=counts["cancelled"],
        )

    def _log(
        self,
        now: dt.datetime,
        action: str,
        target: str | None = None,
        by: str = _SYSTEM,
        **detail: str,
    ) -> LogStep:
        return LogStep(now, by, action, target or self.plan.rollout_id, dict(detail))


def skip_reason(plan: RolloutPlan, device: DeviceInfo) -> str | None:
    """Why `device` is not a target of `plan`, or None when it is (also for a preview)."""
    if not plan.target.matches(device):
        return NOT_MATCHING
    try:
        ZoneInfo(device.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return BAD_TIME_ZONE
    try:
        older = compare_versions(device.version, plan.version) < 0
    except Invalid:
        return BAD_VERSION
    return None if older else UP_TO_DATE
