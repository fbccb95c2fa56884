"""Load scenarios: the fleet schema (`devices_virtual.scenario`) plus a `load` section.

A load scenario is a fleet scenario, like a simulation scenario: its fleets name the DM and meeting
regions, the sites, the model mix, how many devices nobody deployed and how many meeting users
exist. The `load` section says how Locust drives them:

    load:
      users: 24                    # Locust users (--users overrides)
      spawn_rate: 12               # users started per second (--spawn-rate overrides)
      run_time_s: 15               # (--time overrides)
      classes:                     # user kind -> Locust weight or fixed count, and its pace
        device:      {weight: 20, constant_throughput: 2.0, tasks: {heartbeat: 1, telemetry: 3}}
        undeployed:  {fixed_count: 1, constant_throughput: 1.0}
        admin:       {fixed_count: 1, constant_throughput: 0.5}
      operations:                  # with an `operator` user: its config push and renewal wave
        push_config_at_s: 3        # (the run then reports the devices' acknowledgements and the
        renew_at_s: 8              # renewed certificates, as the DM service recorded them)
      thresholds:                  # the run fails (non-zero exit) past any of these
        fail_ratio: 0.01
        p95_ms: 2000
        endpoints: {dm telemetry: {p95_ms: 1000}}

`constant_throughput` is the open model: each user starts a task every 1/rate seconds, whatever
the latency, so throughput is not silently capped by slow answers (locust #2347). Unknown keys are
refused with the dotted path of the field, as in the fleet schema.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from devices_virtual.scenario import (
    Scenario,
    Strict,
    read_scenario_data,
    validate_scenario,
)
from load.kinds import TASKS, USER_KINDS, UserKind


class UserClass(Strict):
    weight: int | None = Field(default=None, ge=1, description="Locust weight")
    fixed_count: int | None = Field(default=None, ge=0, description="exactly this many users")
    constant_throughput: float | None = Field(
        default=None, gt=0, description="tasks per second per user, whatever the latency"
    )
    wait_s: tuple[float, float] | None = Field(
        default=None, description="closed model instead: wait between these seconds"
    )
    tasks: dict[str, int] = Field(default_factory=dict, description="task -> weight")

    @model_validator(mode="after")
    def _one_of_each(self) -> UserClass:
        if (self.weight is None) == (self.fixed_count is None):
            raise ValueError("give either weight or fixed_count")
        if self.constant_throughput is not None and self.wait_s is not None:
            raise ValueError("give constant_throughput or wait_s, not both")
        if self.wait_s is not None and not 0 <= self.wait_s[0] <= self.wait_s[1]:
            raise ValueError("wait_s is [low, high] with 0 <= low <= high")
        if any(w < 0 for w in self.tasks.values()) or (self.tasks and not any(self.tasks.values())):
            raise ValueError("task weights are >= 0 and at least one is > 0")
        return self


class EndpointThreshold(Strict):
    p95_ms: float | None = Field(default=None, gt=0)
    fail_ratio: float | None = Field(default=None, ge=0, le=1)


class Thresholds(Strict):
    fail_ratio: float = Field(default=0.01, ge=0, le=1, description="failures / requests, all")
    p95_ms: float | None = Field(default=None, gt=0, description="p95 of every request together")
    endpoints: dict[str, EndpointThreshold] = Field(
        default_factory=dict, description="statistics name (e.g. 'dm telemetry') -> thresholds"
    )


class Operations(Strict):
    """What the `operator` user does once, at these seconds after it starts (null: never): push the
    fleet's configuration profile, and ask every device of the fleet to renew its certificate (a
    renewal wave). The report counts what the service recorded of the devices carrying them out."""

    push_config_at_s: float | None = Field(default=None, ge=0)
    renew_at_s: float | None = Field(default=None, ge=0)


class LoadSpec(Strict):
    users: int = Field(default=10, ge=1)
    spawn_rate: float = Field(default=10.0, gt=0)
    run_time_s: float = Field(default=30.0, gt=0)
    classes: dict[UserKind, UserClass] = Field(min_length=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    hold_s: float = Field(
        default=6.0, gt=0, description="how long a moderator keeps a locked conference open"
    )
    stop_timeout_s: float = Field(default=3.0, ge=0, description="let running tasks finish")
    operations: Operations | None = Field(
        default=None, description="the operator's config push and renewal wave"
    )

    @model_validator(mode="after")
    def _tasks(self) -> LoadSpec:
        if ("operator" in self.classes) != (self.operations is not None):
            raise ValueError("an operator user and an operations section go together")
        for kind, spec in self.classes.items():
            unknown = sorted(set(spec.tasks) - set(TASKS[kind]))
            if unknown:
                raise ValueError(
                    f"classes.{kind}.tasks: unknown task(s) {unknown}; "
                    f"{kind} has: {', '.join(TASKS[kind])}"
                )
        return self


class LoadScenario(Scenario):
    load: LoadSpec

    @model_validator(mode="after")
    def _fleets_for_classes(self) -> LoadScenario:
        kinds = set(self.load.classes)
        if kinds & {"participant", "moderator"} and not self.meeting_fleets:
            raise ValueError("meeting users need a fleet with a meeting_region")
        return self

    @property
    def meeting_fleets(self) -> list[Any]:
        return [f for f in self.fleets if f.meeting_region is not None]

    def locust_classes(self) -> list[str]:
        from load.kinds import LOCUST_CLASSES

        return [LOCUST_CLASSES[k] for k in USER_KINDS if k in self.load.classes]

    def expected_users(self, users: int | None = None) -> dict[UserKind, int]:
        """Users of each kind Locust starts for `users` in all, at most (fixed counts first, the
        rest by weight, rounded up: provisioning must never fall short)."""
        total = self.load.users if users is None else users
        classes = self.load.classes
        fixed = {k: c.fixed_count for k, c in classes.items() if c.fixed_count is not None}
        left = max(0, total - sum(fixed.values()))
        weights = {k: c.weight for k, c in classes.items() if c.weight is not None}
        out: dict[UserKind, int] = {k: min(v, total) for k, v in fixed.items()}
        weight_sum = sum(weights.values())
        for kind, weight in weights.items():
            out[kind] = math.ceil(left * weight / weight_sum) if weight_sum else 0
        return out


def parse_load_scenario(data: Any, source: str = "scenario") -> LoadScenario:
    return validate_scenario(LoadScenario, data, source)


def load_load_scenario(path: Path | str) -> LoadScenario:
    return parse_load_scenario(read_scenario_data(path), str(path))
