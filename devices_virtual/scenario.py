"""The one schema of `scenarios/*.yaml`, read by `roomtrust fleet` (real virtual devices) and by the
simulator alike.

A scenario names its fleets (model mix and counts, sites with time zone and location, the DM region
and the meeting region), its phases in order (deploy, enroll, steady telemetry, meetings with an
arrival rate and a duration, toggle DM off/on, inject faults) and its seeds. Unknown keys are
refused, so a typo fails loudly with the path of the bad field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices_virtual.models import CATALOGUE
from protocol.fields import NETWORK_TYPES
from protocol.regions import DM_REGIONS, MEETING_REGIONS

M = TypeVar("M", bound=BaseModel)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; `field` is the dotted path of the first problem."""

    def __init__(self, source: str, field: str | None, reason: str) -> None:
        super().__init__(f"{source}: {field or '(top)'}: {reason}")
        self.field = field
        self.reason = reason


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    name: str = Field(min_length=1, max_length=100)
    time_zone: str = "UTC"
    location: str = Field(default="us-east", description="a placement location of the meeting API")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class Fleet(Strict):
    name: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9-]*$")
    dm_region: str
    meeting_region: str | None = None
    sites: list[Site] = Field(min_length=1)
    models: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="model name -> number of devices, spread over the sites in turn"
    )
    undeployed: int = Field(default=0, ge=0, description="extra devices no administrator deploys")
    dm_disabled: int = Field(default=0, ge=0, description="devices whose DM switch is off at boot")
    network_type: str = "ethernet"  # one of NETWORK_TYPES (DM-09)
    users: int = Field(default=0, ge=0, description="meeting users of this fleet's enterprise")

    @field_validator("dm_region")
    @classmethod
    def _dm_region(cls, value: str) -> str:
        if value not in DM_REGIONS:
            raise ValueError(f"must be one of {', '.join(DM_REGIONS)}")
        return value

    @field_validator("network_type")
    @classmethod
    def _network_type(cls, value: str) -> str:
        if value not in NETWORK_TYPES:
            raise ValueError(f"must be one of {', '.join(NETWORK_TYPES)}")
        return value

    @field_validator("meeting_region")
    @classmethod
    def _meeting_region(cls, value: str | None) -> str | None:
        if value is not None and value not in MEETING_REGIONS:
            raise ValueError(f"must be one of {', '.join(MEETING_REGIONS)}")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; models are: {', '.join(CATALOGUE)}")
        if not sum(value.values()):
            raise ValueError("a fleet needs at least one device")
        return value

    @property
    def deployed_count(self) -> int:
        return sum(self.models.values())

    @property
    def size(self) -> int:
        return self.deployed_count + self.undeployed

    @model_validator(mode="after")
    def _counts(self) -> Fleet:
        if self.dm_disabled > self.deployed_count:
            raise ValueError("dm_disabled is larger than the number of deployed devices")
        return self


class PhaseBase(Strict):
    fleets: list[str] | None = Field(default=None, description="fleet names; none means all")


class DeployPhase(PhaseBase):
    kind: Literal["deploy"]


class EnrollPhase(PhaseBase):
    kind: Literal["enroll"]
    within_s: float = Field(default=10.0, gt=0, description="power-ups are spread over this time")
    timeout_s: float = Field(default=120.0, gt=0)


class SteadyPhase(PhaseBase):
    kind: Literal["steady"]
    duration_s: float = Field(gt=0)


class MeetingsPhase(PhaseBase):
    kind: Literal["meetings"]
    duration_s: float = Field(gt=0, description="how long new meetings keep arriving")
    arrivals_per_min: float = Field(gt=0)
    meeting_s: float = Field(gt=0, description="mean length of a meeting")
    participants: int = Field(default=3, ge=1, description="users joining besides the room")
    locked_share: float = Field(default=0.5, ge=0, le=1, description="meetings with a lobby")
    password_share: float = Field(default=0.5, ge=0, le=1)
    chat: bool = True
    moderation: bool = True
    recording_share: float = Field(default=0.25, ge=0, le=1)


class ToggleDmPhase(PhaseBase):
    kind: Literal["toggle_dm"]
    enabled: bool
    share: float = Field(default=1.0, gt=0, le=1, description="share of online devices switched")
    duration_s: float = Field(default=0.0, ge=0, description="observe this long afterwards")


class InjectFaultsPhase(PhaseBase):
    kind: Literal["inject_faults"]
    component: Literal["camera", "microphone", "display"]
    share: float = Field(default=0.1, gt=0, le=1)
    detail: str = Field(default="injected fault", max_length=100)
    clear_after_s: float | None = Field(default=None, gt=0)


Phase = Annotated[
    DeployPhase | EnrollPhase | SteadyPhase | MeetingsPhase | ToggleDmPhase | InjectFaultsPhase,
    Field(discriminator="kind"),
]


class Timing(Strict):
    heartbeat_s: float = Field(default=30.0, gt=0)
    telemetry_s: float = Field(default=900.0, gt=0)
    ntp_interval_s: float = Field(default=3600.0, gt=0)
    enroll_retry_s: float = Field(
        default=30.0, gt=0, description="first wait before a refused enrollment is tried again"
    )
    boot_scale: float = Field(
        default=1.0, ge=0, description="model boot times are multiplied by this (0: instant)"
    )
    speed: float = Field(
        default=1.0, gt=0, description="real fleet runs divide phase durations by this"
    )


class Scenario(Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [1], min_length=1)
    timing: Timing = Field(default_factory=Timing)
    fleets: list[Fleet] = Field(min_length=1)
    phases: list[Phase] = Field(min_length=1)

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def fleet(self, name: str) -> Fleet:
        for fleet in self.fleets:
            if fleet.name == name:
                return fleet
        raise KeyError(name)

    def fleets_of(self, phase: PhaseBase) -> list[Fleet]:
        names = phase.fleets
        return [f for f in self.fleets if names is None or f.name in names]

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        names = [f.name for f in self.fleets]
        if len(set(names)) != len(names):
            raise ValueError("fleet names must be unique")
        for index, phase in enumerate(self.phases):
            unknown = sorted(set(phase.fleets or []) - set(names))
            if unknown:
                raise ValueError(f"phases.{index}.fleets: unknown fleet(s) {unknown}")
            if isinstance(phase, MeetingsPhase):
                for fleet in self.fleets_of(phase):
                    if fleet.meeting_region is None or fleet.users < 1:
                        raise ValueError(
                            f"phases.{index}: fleet {fleet.name!r} needs a meeting_region and "
                            "users for meetings"
                        )
        return self


def validate_scenario(model: type[M], data: object, source: str) -> M:
    """Validate scenario data against one of the scenario schemas (fleet, sim, load); the first
    problem becomes a ScenarioError naming its dotted field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise ScenarioError(source, field, first["msg"]) from None


def read_scenario_data(path: Path | str) -> dict[str, Any]:
    """The YAML mapping of a scenario file, or a ScenarioError saying why it cannot be read."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), None, f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(str(path), None, "a scenario is a mapping")
    return data


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    return validate_scenario(Scenario, data, source)


def load_scenario(path: Path | str) -> Scenario:
    return parse_scenario(read_scenario_data(path), str(path))
