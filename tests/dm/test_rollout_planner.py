"""Unit tests of the sans-IO rollout planner: events in, actions out, no I/O and no clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from services.common.errors import Conflict, Invalid
from services.dm.domain.rollout_planner import (
    BAD_TIME_ZONE,
    NOT_MATCHING,
    UP_TO_DATE,
    Abort,
    Action,
    AlertRaised,
    Amount,
    DeviceInfo,
    DeviceJoined,
    DownloadFinished,
    DownloadStarted,
    LogStep,
    MaintenanceWindow,
    Pause,
    Resume,
    Rollback,
    RollbackDevice,
    RolloutAborted,
    RolloutCompleted,
    RolloutPaused,
    RolloutPlan,
    RolloutPlanner,
    RolloutResumed,
    Start,
    StartUpdate,
    TargetFilter,
    Tick,
    UpdateFailed,
    UpdateSucceeded,
    WaveStarted,
    skip_reason,
)

T0 = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)  # a Wednesday, winter time
OLD, NEW = "262.410.0.5", "262.410.1.0"
MINUTE = dt.timedelta(minutes=1)
A = TypeVar("A")


def device(
    n: int,
    *,
    model: str = "MeetingBar A20",
    site: str = "s1",
    tz: str = "UTC",
    region: str = "us",
    version: str = OLD,
    tags: Sequence[str] = (),
) -> DeviceInfo:
    return DeviceInfo(f"d{n:03}", model, site, tz, region, version, frozenset(tags))


def plan(**changes: object) -> RolloutPlan:
    base = RolloutPlan(
        rollout_id="r1",
        image_id="img1",
        version=NEW,
        target=TargetFilter(),
        waves=(Amount(count=2), Amount(percent=100)),
        alert_window=10 * MINUTE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def started(actions: Sequence[Action]) -> list[str]:
    return [a.device_id for a in actions if isinstance(a, StartUpdate)]


def of_type(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def succeed(planner: RolloutPlanner, ids: Sequence[str], now: dt.datetime) -> list[Action]:
    actions: list[Action] = []
    for device_id in ids:
        actions += planner.handle(UpdateSucceeded(now, device_id))
    return actions


def run_to_end(planner: RolloutPlanner, first: Sequence[Action], now: dt.datetime) -> dt.datetime:
    """Let every started device succeed, and time pass, until nothing new starts."""
    pending = started(first)
    while pending:
        succeed(planner, pending, now)
        now += planner.plan.alert_window + MINUTE
        pending = started(planner.handle(Tick(now)))
    return now


# -- targets and waves -------------------------------------------------------------------------


def test_target_filter_selects_by_model_site_version_and_tag() -> None:
    target = TargetFilter(
        models=frozenset({"MeetingBar A20"}),
        site_ids=frozenset({"s1"}),
        versions=frozenset({OLD}),
        tags=frozenset({"lobby"}),
    )
    p = plan(target=target)
    good = device(1, tags=("lobby", "floor2"))
    assert skip_reason(p, good) is None
    assert skip_reason(p, replace(good, model="MeetingBar A30")) == NOT_MATCHING
    assert skip_reason(p, replace(good, site_id="s2")) == NOT_MATCHING
    assert skip_reason(p, replace(good, version="262.400.0.1")) == NOT_MATCHING
    assert skip_reason(p, replace(good, tags=frozenset({"floor2"}))) == NOT_MATCHING


def test_devices_already_on_the_version_or_newer_are_not_targets() -> None:
    p = plan()
    assert skip_reason(p, device(1, version=NEW)) == UP_TO_DATE
    assert skip_reason(p, device(1, version="263.0")) == UP_TO_DATE
    assert skip_reason(p, device(1, tz="Mars/Olympus")) == BAD_TIME_ZONE


def test_waves_by_count_and_percentage_with_the_last_taking_the_rest() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(count=2), Amount(percent=30), Amount(percent=10))))
    actions = planner.handle(Start(T0, tuple(device(n) for n in range(10))))
    assert [w.size for w in planner.progress()] == [2, 3, 5]
    assert of_type(actions, WaveStarted) == [WaveStarted(1, ("d000", "d001"))]
    assert started(actions) == ["d000", "d001"]
    assert [w.state for w in planner.progress()] == ["running", "pending", "pending"]


def test_only_matching_devices_enter_the_waves() -> None:
    planner = RolloutPlanner(plan(target=TargetFilter(models=frozenset({"MeetingBar A20"}))))
    fleet = (device(1), device(2, model="MeetingBoard 65"), device(3, version=NEW), device(4))
    actions = planner.handle(Start(T0, fleet))
    assert started(actions) == ["d001", "d004"]
    assert planner.device_status("d002") is None
    assert planner.device_status("d003") is None


def test_next_wave_starts_once_the_success_share_stayed_healthy_for_the_alert_window() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(count=4), Amount(percent=100)), success_percent=50))
    planner.handle(Start(T0, tuple(device(n) for n in range(8))))
    assert started(succeed(planner, ["d000"], T0 + MINUTE)) == []
    later = T0 + 2 * MINUTE
    succeed(planner, ["d001"], later)
    # Updated, but not yet past the alert window: the next wave waits.
    assert started(planner.handle(Tick(later + 10 * MINUTE))) == []
    actions = planner.handle(Tick(later + 11 * MINUTE))
    assert of_type(actions, WaveStarted) == [WaveStarted(2, ("d004", "d005", "d006", "d007"))]
    assert started(actions) == ["d004", "d005", "d006", "d007"]
    assert planner.progress()[0].state == "done"
    assert planner.progress()[0].percent_updated == 50.0


def test_rollout_completes_when_every_wave_is_healthy_and_logs_every_step() -> None:
    planner = RolloutPlanner(plan())
    first = planner.handle(Start(T0, tuple(device(n) for n in range(5))))
    log: list[Action] = list(first)
    now = T0
    pending = started(first)
    while pending:
        log += succeed(planner, pending, now)
        now += 11 * MINUTE
        actions = planner.handle(Tick(now))
        log += actions
        pending = started(actions)
    assert planner.state == "completed"
    assert RolloutCompleted() in log
    steps = [a.action for a in of_type(log, LogStep)]
    assert steps.count("rollout.device_start") == 5
    assert steps.count("rollout.device_updated") == 5
    assert steps.count("rollout.wave_start") == 2
    assert steps[0] == "rollout.start" and steps[-1] == "rollout.complete"
    assert [w.updated for w in planner.progress()] == [2, 3]


def test_an_empty_target_set_completes_at_once() -> None:
    planner = RolloutPlanner(plan())
    actions = planner.handle(Start(T0, (device(1, version=NEW),)))
    assert RolloutCompleted() in actions
    assert planner.state == "completed"


# -- error conditions --------------------------------------------------------------------------


def test_error_threshold_by_count_pauses_the_rollout() -> None:
    p = plan(waves=(Amount(count=4), Amount(percent=100)), error_threshold=Amount(count=2))
    planner = RolloutPlanner(p)
    planner.handle(Start(T0, tuple(device(n) for n in range(8))))
    first = planner.handle(UpdateFailed(T0 + MINUTE, "d000", "bad-signature"))
    assert of_type(first, RolloutPaused) == []
    second = planner.handle(UpdateFailed(T0 + MINUTE, "d001", "bad-signature"))
    assert of_type(second, RolloutPaused) == [
        RolloutPaused("wave 1 reached its error threshold (2 of 4 failed)")
    ]
    assert planner.state == "paused"
    assert started(planner.handle(Tick(T0 + 60 * MINUTE))) == []


def test_error_threshold_by_percentage_can_abort() -> None:
    p = plan(
        waves=(Amount(count=4), Amount(percent=100)),
        error_threshold=Amount(percent=50),
        on_error="abort",
    )
    planner = RolloutPlanner(p)
    planner.handle(Start(T0, tuple(device(n) for n in range(8))))
    assert of_type(planner.handle(UpdateFailed(T0, "d000", "wrong-model")), RolloutAborted) == []
    actions = planner.handle(UpdateFailed(T0, "d001", "wrong-model"))
    assert of_type(actions, RolloutAborted) != []
    assert planner.state == "aborted"
    assert planner.progress()[1].cancelled == 4
    assert started(planner.handle(Tick(T0 + 60 * MINUTE))) == []


def test_a_bad_image_pauses_the_first_wave_and_no_device_leaves_its_version() -> None:
    p = plan(waves=(Amount(percent=10), Amount(percent=100)), error_threshold=Amount(percent=50))
    planner = RolloutPlanner(p)
    first = planner.handle(Start(T0, tuple(device(n) for n in range(300))))
    assert len(started(first)) == 30
    for device_id in started(first):
        planner.handle(UpdateFailed(T0 + MINUTE, device_id, "bad-signature"))
    assert planner.state == "paused"
    assert all(w.updated == 0 for w in planner.progress())
    assert planner.progress()[1].waiting == 270


def test_an_alert_within_the_window_after_updating_counts_as_a_failure() -> None:
    planner = RolloutPlanner(plan(error_threshold=Amount(count=1)))
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    succeed(planner, ["d000", "d001"], T0)
    actions = planner.handle(AlertRaised(T0 + 9 * MINUTE, "d000", "camera fault"))
    assert planner.device_status("d000") == "failed"
    assert of_type(actions, RolloutPaused)[0].reason.startswith("wave 1 reached")
    failed_steps = [a for a in of_type(actions, LogStep) if a.action == "rollout.device_failed"]
    assert "camera fault" in failed_steps[0].detail["reason"]


def test_an_alert_after_the_window_does_not_count() -> None:
    planner = RolloutPlanner(plan(error_threshold=Amount(count=1)))
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    succeed(planner, ["d000", "d001"], T0)
    planner.handle(AlertRaised(T0 + 11 * MINUTE, "d000"))
    assert planner.device_status("d000") == "updated"
    assert planner.state == "running"


def test_a_device_silent_past_the_update_timeout_fails() -> None:
    planner = RolloutPlanner(plan(update_timeout=30 * MINUTE, error_threshold=Amount(count=2)))
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    planner.handle(UpdateSucceeded(T0 + MINUTE, "d000"))
    planner.handle(Tick(T0 + 30 * MINUTE))
    assert planner.device_status("d001") == "failed"
    assert planner.device_status("d000") == "updated"


def test_a_wave_that_cannot_reach_success_pauses_and_resume_moves_on() -> None:
    planner = RolloutPlanner(plan(error_threshold=Amount(count=5)))
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    planner.handle(UpdateFailed(T0, "d000", "install failed"))
    succeed(planner, ["d001"], T0)
    actions = planner.handle(Tick(T0 + 11 * MINUTE))
    assert of_type(actions, RolloutPaused) == [
        RolloutPaused("wave 1 cannot reach its success condition")
    ]
    resumed = planner.handle(Resume(T0 + 12 * MINUTE))
    assert RolloutResumed() in resumed
    assert started(resumed) == ["d002", "d003"]


# -- timing ------------------------------------------------------------------------------------


def test_maintenance_window_is_read_in_each_site_time_zone() -> None:
    window = MaintenanceWindow(dt.time(1), dt.time(3))
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), windows=(window,)))
    berlin = device(1, tz="Europe/Berlin")
    new_york = device(2, tz="America/New_York")
    # 00:30 UTC is 01:30 in Berlin (UTC+1 in January) and 19:30 the day before in New York.
    at = dt.datetime(2025, 1, 15, 0, 30, tzinfo=dt.UTC)
    assert started(planner.handle(Start(at - 2 * 60 * MINUTE, (berlin, new_york)))) == []
    assert started(planner.handle(Tick(at))) == ["d001"]
    # 06:30 UTC is 01:30 in New York (UTC-5).
    assert started(planner.handle(Tick(at + 5 * 60 * MINUTE))) == []
    assert started(planner.handle(Tick(at + 6 * 60 * MINUTE))) == ["d002"]


def test_maintenance_window_follows_daylight_saving_time() -> None:
    window = MaintenanceWindow(dt.time(1), dt.time(2))
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), windows=(window,)))
    planner.handle(
        Start(dt.datetime(2025, 7, 1, 12, tzinfo=dt.UTC), (device(1, tz="Europe/Berlin"),))
    )
    # In July Berlin is UTC+2: 00:30 UTC is 02:30 there (closed), 23:30 UTC is 01:30 (open).
    assert started(planner.handle(Tick(dt.datetime(2025, 7, 2, 0, 30, tzinfo=dt.UTC)))) == []
    assert started(planner.handle(Tick(dt.datetime(2025, 7, 2, 23, 30, tzinfo=dt.UTC)))) == ["d001"]


def test_a_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    friday_night = MaintenanceWindow(dt.time(22), dt.time(4), weekdays=frozenset({4}))
    friday = dt.datetime(2025, 1, 17, 23, 0)
    assert friday_night.is_open(friday)
    assert friday_night.is_open(friday + dt.timedelta(hours=4))  # Saturday 03:00
    assert not friday_night.is_open(friday + dt.timedelta(hours=6))  # Saturday 05:00
    assert not friday_night.is_open(friday - dt.timedelta(days=1))  # Thursday 23:00
    assert not friday_night.is_open(friday + dt.timedelta(days=1))  # Saturday 23:00


def test_download_cap_holds_per_region_and_frees_on_download_finished() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), download_cap=2))
    fleet = (*(device(n, region="us") for n in range(5)), device(9, region="eu"))
    first = planner.handle(Start(T0, fleet))
    assert started(first) == ["d000", "d001", "d009"]
    assert planner.downloads_running("us") == 2
    planner.handle(DownloadStarted(T0, "d000"))
    assert planner.device_status("d000") == "downloading"
    assert started(planner.handle(DownloadFinished(T0 + MINUTE, "d000"))) == ["d002"]
    assert started(planner.handle(UpdateFailed(T0 + MINUTE, "d001", "no space"))) == []
    assert planner.state == "paused"  # the default threshold is one failure


def test_a_slot_frees_when_the_update_succeeds() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), download_cap=1))
    planner.handle(Start(T0, tuple(device(n) for n in range(3))))
    assert started(planner.handle(UpdateSucceeded(T0, "d000"))) == ["d001"]
    assert planner.downloads_running("us") == 1


# -- late joiners ------------------------------------------------------------------------------


def test_a_matching_device_deployed_later_joins_the_last_wave() -> None:
    planner = RolloutPlanner(plan(target=TargetFilter(site_ids=frozenset({"s1"}))))
    first = planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    assert planner.handle(DeviceJoined(T0, device(50, site="s2"))) == []
    joined = planner.handle(DeviceJoined(T0, device(51)))
    assert [a.action for a in of_type(joined, LogStep)] == ["rollout.device_joined"]
    assert planner.progress()[1].size == 3
    now = run_to_end(planner, first, T0)
    assert planner.device_status("d051") == "updated"
    assert planner.state == "completed"
    assert planner.handle(DeviceJoined(now, device(52))) == []


def test_a_joiner_while_the_last_wave_runs_is_updated_at_once() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),)))
    planner.handle(Start(T0, (device(1),)))
    assert started(planner.handle(DeviceJoined(T0 + MINUTE, device(2)))) == ["d002"]


# -- control -----------------------------------------------------------------------------------


def test_pause_stops_new_updates_and_resume_continues() -> None:
    planner = RolloutPlanner(plan())
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    paused = planner.handle(Pause(T0, by="alice@example.com"))
    assert of_type(paused, RolloutPaused) == [RolloutPaused("paused by alice@example.com")]
    assert of_type(paused, LogStep)[0].actor == "alice@example.com"
    succeed(planner, ["d000", "d001"], T0)  # downloads already running still report
    assert started(planner.handle(Tick(T0 + 20 * MINUTE))) == []
    with pytest.raises(Conflict):
        planner.handle(Pause(T0 + 20 * MINUTE))
    assert started(planner.handle(Resume(T0 + 21 * MINUTE))) == ["d002", "d003"]
    with pytest.raises(Conflict):
        planner.handle(Resume(T0 + 22 * MINUTE))


def test_abort_cancels_waiting_devices() -> None:
    planner = RolloutPlanner(plan())
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    actions = planner.handle(Abort(T0))
    assert of_type(actions, RolloutAborted) == [RolloutAborted("aborted by admin")]
    assert [planner.device_status(f"d00{n}") for n in range(4)] == [
        "sent",
        "sent",
        "cancelled",
        "cancelled",
    ]
    assert started(planner.handle(Tick(T0 + 60 * MINUTE))) == []
    with pytest.raises(Conflict):
        planner.handle(Abort(T0 + 60 * MINUTE))


def test_rollback_restores_every_updated_device_even_late_ones() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(count=3), Amount(percent=100))))
    planner.handle(Start(T0, tuple(device(n, version=f"262.410.0.{n}") for n in range(5))))
    succeed(planner, ["d000", "d001"], T0)
    actions = planner.handle(Rollback(T0 + MINUTE))
    assert of_type(actions, RollbackDevice) == [
        RollbackDevice("d000", "262.410.0.0"),
        RollbackDevice("d001", "262.410.0.1"),
    ]
    assert planner.state == "rolled_back"
    late = planner.handle(UpdateSucceeded(T0 + 2 * MINUTE, "d002"))
    assert of_type(late, RollbackDevice) == [RollbackDevice("d002", "262.410.0.2")]
    assert planner.progress()[0].rolled_back == 3
    assert planner.progress()[1].cancelled == 2
    with pytest.raises(Conflict):
        planner.handle(Rollback(T0 + 3 * MINUTE))


def test_rollback_includes_devices_failed_by_an_alert() -> None:
    planner = RolloutPlanner(plan(error_threshold=Amount(count=1)))
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    succeed(planner, ["d000"], T0)
    planner.handle(AlertRaised(T0 + MINUTE, "d000"))
    assert of_type(planner.handle(Rollback(T0 + 2 * MINUTE)), RollbackDevice) == [
        RollbackDevice("d000", OLD)
    ]


# -- bad input -----------------------------------------------------------------------------------


def test_controls_before_start_and_a_second_start_are_refused() -> None:
    planner = RolloutPlanner(plan())
    with pytest.raises(Conflict):
        planner.handle(Pause(T0))
    planner.handle(Start(T0, (device(1),)))
    with pytest.raises(Conflict):
        planner.handle(Start(T0, (device(2),)))


def test_naive_times_are_refused() -> None:
    planner = RolloutPlanner(plan())
    with pytest.raises(Invalid) as refused:
        planner.handle(Start(dt.datetime(2025, 1, 1), (device(1),)))
    assert refused.value.field == "now"
    assert planner.state == "created"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"waves": ()}, "waves"),
        ({"success_percent": 0}, "success_percent"),
        ({"download_cap": 0}, "download_cap"),
        ({"on_error": "explode"}, "on_error"),
        ({"version": "latest"}, "version"),
    ],
)
def test_a_bad_plan_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as refused:
        plan(**changes)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "amount"),
        ({"count": 1, "percent": 5.0}, "amount"),
        ({"count": 0}, "count"),
        ({"percent": 120.0}, "percent"),
    ],
)
def test_a_bad_amount_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(Invalid) as refused:
        Amount(**kwargs)  # type: ignore[arg-type]
    assert refused.value.field == field


# -- health gating -------------------------------------------------------------------------------


def test_an_alert_after_updating_keeps_the_next_wave_from_starting() -> None:
    """Health-gated waves: a device that raises an alert within the alert window after updating is
    a failure, so its wave misses its success condition and the next wave does not start. (With
    the alert handler switched off, wave 2 would start here.)"""
    planner = RolloutPlanner(plan(error_threshold=Amount(count=3)))
    planner.handle(Start(T0, tuple(device(n) for n in range(5))))
    succeed(planner, ["d000", "d001"], T0)
    planner.handle(AlertRaised(T0 + 5 * MINUTE, "d001", "microphone fault"))
    actions = planner.handle(Tick(T0 + 11 * MINUTE))
    assert started(actions) == []
    assert of_type(actions, WaveStarted) == []
    assert of_type(actions, RolloutPaused) == [
        RolloutPaused("wave 1 cannot reach its success condition")
    ]
    assert [w.failed for w in planner.progress()] == [1, 0]
    assert planner.progress()[1].waiting == 3


def test_an_alert_raised_before_the_update_does_not_count() -> None:
    planner = RolloutPlanner(plan())
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    succeed(planner, ["d000"], T0 + 2 * MINUTE)
    planner.handle(AlertRaised(T0 + MINUTE, "d000", "offline before the reboot"))
    assert planner.device_status("d000") == "updated"
    assert planner.state == "running"


# -- work per event ------------------------------------------------------------------------------


def test_a_tick_costs_one_window_check_per_time_zone_not_one_per_waiting_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    is_open = MaintenanceWindow.is_open

    def counted(window: MaintenanceWindow, local: dt.datetime) -> bool:
        nonlocal calls
        calls += 1
        return is_open(window, local)

    monkeypatch.setattr(MaintenanceWindow, "is_open", counted)
    window = MaintenanceWindow(dt.time(2), dt.time(4))
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), windows=(window,)))
    zones = ("Europe/Berlin", "America/New_York", "Asia/Tokyo")
    fleet = tuple(device(n, tz=zones[n % 3]) for n in range(3000))
    planner.handle(Start(T0, fleet))  # noon UTC: every window is closed
    calls = 0
    assert started(planner.handle(Tick(T0 + MINUTE))) == []
    assert calls == len(zones)


def test_a_device_report_does_not_rescan_the_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a download cap, a finished download starts exactly one waiting device, and the
    planner looks at no device it does not start."""
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),), download_cap=10))
    first = planner.handle(Start(T0, tuple(device(n) for n in range(5000))))
    assert len(started(first)) == 10
    seen: list[str] = []
    original = RolloutPlanner._set

    def spy(self: RolloutPlanner, target: Any, status: Any) -> None:
        seen.append(target.info.device_id)
        original(self, target, status)

    monkeypatch.setattr(RolloutPlanner, "_set", spy)
    actions = planner.handle(DownloadFinished(T0 + MINUTE, "d000"))
    assert started(actions) == ["d010"]
    assert seen == ["d000", "d010"]


# -- consistency -----------------------------------------------------------------------------------


def test_progress_counts_always_match_the_device_states() -> None:
    """Random reports, alerts, joins, controls and time: the per-wave counters kept for speed
    always agree with the states of the devices themselves."""
    for seed in range(20):
        rng = random.Random(seed)
        zones = ("UTC", "Europe/Berlin", "Asia/Tokyo")
        p = plan(
            waves=(Amount(count=5), Amount(percent=40), Amount(percent=100)),
            success_percent=rng.choice((50.0, 80.0, 100.0)),
            error_threshold=Amount(percent=rng.choice((20.0, 50.0, 100.0))),
            download_cap=rng.choice((None, 3, 7)),
            update_timeout=rng.choice((None, 30 * MINUTE)),
            windows=rng.choice(((), (MaintenanceWindow(dt.time(0), dt.time(23)),))),
        )
        planner = RolloutPlanner(p)
        fleet = [
            device(n, tz=rng.choice(zones), region=rng.choice(("us", "eu"))) for n in range(40)
        ]
        now = T0
        planner.handle(Start(now, tuple(fleet[:30])))
        for step in range(300):
            now += dt.timedelta(seconds=rng.randrange(1, 400))
            target = f"d{rng.randrange(40):03}"
            event = rng.choice(
                (
                    DownloadStarted(now, target),
                    DownloadFinished(now, target),
                    UpdateSucceeded(now, target),
                    UpdateSucceeded(now, target),
                    UpdateFailed(now, target, "install-failed"),
                    AlertRaised(now, target),
                    DeviceJoined(now, fleet[rng.randrange(30, 40)]),
                    Tick(now),
                    Tick(now),
                    Pause(now),
                    Resume(now),
                    Abort(now) if step > 250 else Tick(now),
                )
            )
            with contextlib.suppress(Conflict):  # a control that does not fit the state
                planner.handle(event)
            for wave in planner.progress():
                ids = planner._waves[wave.wave - 1].device_ids
                states = [planner.device_status(i) for i in ids]
                assert wave.size == len(ids)
                assert wave.waiting == states.count("waiting")
                assert wave.updated == states.count("updated")
                assert wave.failed == states.count("failed")
                assert wave.cancelled == states.count("cancelled")
                assert wave.in_progress == sum(
                    s in ("sent", "downloading", "installing") for s in states
                )
            for region in ("us", "eu"):
                holding = [
                    d for d in planner._devices.values() if d.holds_slot and d.info.region == region
                ]
                assert planner.downloads_running(region) == len(holding)
                assert p.download_cap is None or len(holding) <= p.download_cap


# -- late joiners and controls ---------------------------------------------------------------------


def test_a_device_deployed_while_paused_joins_and_is_updated_after_resume() -> None:
    planner = RolloutPlanner(plan(waves=(Amount(percent=100),)))
    planner.handle(Start(T0, (device(1),)))
    planner.handle(Pause(T0))
    joined = planner.handle(DeviceJoined(T0 + MINUTE, device(2)))
    assert started(joined) == [] and planner.device_status("d002") == "waiting"
    assert started(planner.handle(Resume(T0 + 2 * MINUTE))) == ["d002"]


def test_after_abort_late_joiners_and_reports_change_nothing() -> None:
    planner = RolloutPlanner(plan())
    planner.handle(Start(T0, tuple(device(n) for n in range(4))))
    planner.handle(Abort(T0))
    assert planner.handle(DeviceJoined(T0, device(9))) == []
    assert planner.device_status("d009") is None
    planner.handle(UpdateSucceeded(T0 + MINUTE, "d000"))  # an update already running finishes
    assert planner.device_status("d000") == "updated"
    assert started(planner.handle(Tick(T0 + 60 * MINUTE))) == []
    assert planner.state == "aborted"
