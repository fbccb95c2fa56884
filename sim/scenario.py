"""Simulation scenarios: the fleet schema (`devices_virtual.scenario`) plus a `sim` section.

A simulation scenario is a fleet scenario, so `roomtrust fleet` and `roomtrust sim` read the same
fleets, sites, time zones, timing and seeds; the `sim` section picks the model and its parameters:

    sim:
      kind: call_load            # enrollment_storm | staged_rollout | call_load | failover |
      hours: 24                  # retention_volume
      ...

Unknown keys are refused with the dotted path of the field, as in the fleet schema.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from devices_virtual.scenario import (
    EnrollPhase,
    Scenario,
    ScenarioError,
    Strict,
    read_scenario_data,
    validate_scenario,
)
from protocol.regions import DM_REGIONS, MEETING_REGIONS
from sim.service import Calibration, ServiceTime, load_calibration

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CALIBRATION = ROOT / "scenarios" / "calibration" / "default.yaml"


class SimBase(Strict):
    hours: float = Field(default=24.0, gt=0, description="simulated time")
    sample_every_s: float = Field(default=60.0, gt=0, description="time-series resolution")
    calibration: str | None = Field(default=None, description="a scenarios/calibration/*.yaml")
    services: dict[str, ServiceTime] = Field(
        default_factory=dict, description="endpoint -> service time, over the calibration file"
    )
    start: dt.datetime = dt.datetime(2025, 1, 15, 0, 0, tzinfo=dt.UTC)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def service_times(self) -> dict[str, ServiceTime]:
        path = Path(self.calibration) if self.calibration else DEFAULT_CALIBRATION
        if not path.is_absolute():
            path = ROOT / path
        calibration: Calibration = load_calibration(path)
        return {**calibration.endpoints, **self.services}


class EnrollmentStorm(SimBase):
    kind: Literal["enrollment_storm"]
    replicas: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="DM region -> replicas (default: the calibration's)"
    )
    dm_column: dict[str, str] = Field(
        default_factory=lambda: {"us": "na", "eu": "eu", "au": "asia"},
        description="the latency-matrix column standing in for each DM region's data center",
    )

    @field_validator("replicas")
    @classmethod
    def _regions(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DM_REGIONS))
        if unknown:
            raise ValueError(f"unknown DM region(s) {unknown}")
        return value


class AmountSpec(Strict):
    count: int | None = Field(default=None, ge=1)
    percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> AmountSpec:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give either count or percent")
        return self


class WindowSpec(Strict):
    start: dt.time
    end: dt.time
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: list(range(7))
    )


class StagedRollout(SimBase):
    kind: Literal["staged_rollout"]
    version: str = Field(description="the image's firmware version (newer than the fleet's)")
    waves: list[AmountSpec] = Field(min_length=1)
    success_percent: float = Field(default=100.0, gt=0, le=100)
    error_threshold: AmountSpec = AmountSpec(count=1)
    on_error: Literal["pause", "abort"] = "pause"
    alert_window_min: float = Field(default=10.0, ge=0)
    windows: list[WindowSpec] = Field(default_factory=list)
    download_cap: int | None = Field(default=None, ge=1)
    failure_rate: float = Field(default=0.0, ge=0, le=1, description="share of updates failing")
    install_s: float = Field(default=60.0, ge=0, description="install before the reboot")
    tick_s: float = Field(default=60.0, gt=0, description="how often the planner is ticked")


class RelayFailure(Strict):
    region: str
    at_hour: float = Field(ge=0)
    relays: int = Field(default=1, ge=1, description="how many relays fail at once")


class CallLoad(SimBase):
    kind: Literal["call_load", "failover"]
    relays: dict[str, Annotated[int, Field(ge=0)]]
    relay_capacity: int = Field(default=100, ge=1, description="participants one relay carries")
    calls_per_room_hour: float = Field(
        default=0.5, gt=0, description="conference starts per room device in the busiest hour"
    )
    diurnal: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [
            0.02,
            0.01,
            0.01,
            0.01,
            0.02,
            0.05,
            0.15,
            0.4,
            0.8,
            1.0,
            0.95,
            0.8,
            0.6,
            0.85,
            0.95,
            0.9,
            0.7,
            0.4,
            0.2,
            0.1,
            0.06,
            0.04,
            0.03,
            0.02,
        ],
        min_length=24,
        max_length=24,
        description="arrival weight per local hour of the site (1 = busiest hour)",
    )
    sizes: dict[int, float] = Field(
        default_factory=lambda: {2: 0.35, 3: 0.25, 4: 0.15, 6: 0.12, 10: 0.09, 25: 0.04},
        description="participants per conference -> weight",
    )
    mean_call_min: float = Field(default=30.0, gt=0)
    initial_participants: int = Field(default=2, ge=1, description="who placement looks at")
    remote_share: float = Field(default=0.3, ge=0, le=1, description="participants from elsewhere")
    relay_sweep: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=list, description="relay counts for the blocking-vs-relays curve"
    )
    sweep_region: str | None = None
    failures: list[RelayFailure] = Field(default_factory=list)
    replacement_min: float = Field(default=4.0, gt=0, description="mean replacement delay")
    replacement_cv: float = Field(default=0.25, ge=0)

    @field_validator("relays")
    @classmethod
    def _relay_regions(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(MEETING_REGIONS))
        if unknown:
            raise ValueError(f"unknown meeting region(s) {unknown}")
        return value

    @model_validator(mode="after")
    def _failover(self) -> CallLoad:
        if self.kind == "failover" and not self.failures:
            raise ValueError("a failover scenario needs at least one entry in failures")
        for index, failure in enumerate(self.failures):
            if failure.region not in self.relays:
                raise ValueError(f"failures.{index}.region: no relays in {failure.region!r}")
        return self


class RetentionVolume(SimBase):
    kind: Literal["retention_volume"]
    days: int = Field(default=400, ge=1)
    retention_days: int = Field(default=180, ge=1)
    row_bytes: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: {"telemetry": 420, "health": 180, "oplog": 260},
        description="stored bytes per row (with indexes) of each table",
    )
    health_per_device_day: float = Field(default=0.05, ge=0)
    oplog_per_device_day: float = Field(default=0.2, ge=0)
    growth_per_day: float = Field(default=0.0, ge=0, description="fleet growth, share per day")


class FleetOperations(SimBase):
    """Day-two operations carried out by the real agent of every device: a configuration push
    over the command channel, then a certificate renewal wave (certificates of
    `certificate_days` are renewed when fewer than `renew_before_days` are left)."""

    kind: Literal["fleet_operations"]
    push_at_s: float = Field(default=600.0, ge=0, description="when the profile is pushed")
    profile: dict[str, Any] = Field(
        default_factory=lambda: {"ntp.server": "time.example.net", "log.level": "info"},
        description="the pushed values (every model must take them)",
    )
    certificate_days: float = Field(default=31.0, gt=0)
    renew_before_days: float = Field(default=30.0, gt=0)
    replicas: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    dm_column: dict[str, str] = Field(
        default_factory=lambda: {"us": "na", "eu": "eu", "au": "asia"},
        description="the latency-matrix column standing in for each DM region's data center",
    )

    @model_validator(mode="after")
    def _renewal_comes(self) -> FleetOperations:
        if self.renew_before_days >= self.certificate_days:
            raise ValueError("renew_before_days must be shorter than certificate_days")
        return self


SimSpec = Annotated[
    EnrollmentStorm | StagedRollout | CallLoad | RetentionVolume | FleetOperations,
    Field(discriminator="kind"),
]


class SimScenario(Scenario):
    sim: SimSpec

    @property
    def enroll_phase(self) -> EnrollPhase:
        for phase in self.phases:
            if isinstance(phase, EnrollPhase):
                return phase
        return EnrollPhase(kind="enroll")


def parse_sim_scenario(data: Any, source: str = "scenario") -> SimScenario:
    return validate_scenario(SimScenario, data, source)


read_data = read_scenario_data


def load_sim_scenario(path: Path | str) -> SimScenario:
    return parse_sim_scenario(read_data(path), str(path))


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of scenario data with dotted keys set (`sim.relays.asia: 8`, `seeds: [3]`)."""
    result = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = result
        *parents, last = dotted.split(".")
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                raise ScenarioError("--grid", dotted, f"{key!r} is not a mapping in the scenario")
            node = child
        node[last] = value
    return result
