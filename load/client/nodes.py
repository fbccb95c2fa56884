"""Locust hooks that every roomtrust locustfile shares, on a master, a worker or a single process.

- Command-line options: `--roomtrust-scenario` (the load scenario), `--roomtrust-provision` (what
  the set-up step made) and `--roomtrust-out` (where the verdict goes). The master reads the files;
  workers get everything over Locust's own messages, so a worker on another machine (`roomtrust
  load --master-host H`) needs neither file.
- Set-up: the scenario's weights and fixed counts go on the user classes (the master dispatches by
  them); its pace (`constant_throughput`), task weights and targets go to every worker at test start.
- Identities: a user claims one from the master (`claim`), which hands out each provisioned device,
  administrator or meeting account once, to whichever worker asks.
- The conference board: moderators announce their locked conferences; the master relays them to
  every worker, where participants pick one to join through the lobby.
- The verdict: when the run ends, the master checks the scenario's thresholds against Locust's
  statistics, writes verdict.json and sets the exit code (1 when a threshold is broken).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult
from locust import between, constant_throughput, events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from load.client.network import GeventNetwork, GeventTimers
from load.kinds import FLOW, LOCUST_CLASSES, USER_KINDS, UserKind

if TYPE_CHECKING:
    from load.scenario import LoadScenario
    from load.thresholds import Figures

log = logging.getLogger("roomtrust.load")
CLASS_KINDS: dict[str, UserKind] = {v: k for k, v in LOCUST_CLASSES.items()}
CLAIM_TIMEOUT_S = 20.0


class _Node:
    """What this process knows (one per Locust process)."""

    def __init__(self) -> None:
        self.scenario: LoadScenario | None = None  # on the master (or a single process)
        self.settings: dict[str, Any] = {}  # the scenario's `load` section, on every node
        self.targets: dict[str, Any] = {}
        self.pool: dict[str, deque[dict[str, Any]]] = {}
        self.waiting: dict[str, AsyncResult] = {}
        self.board: dict[str, dict[str, Any]] = {}
        self.network: GeventNetwork | None = None
        self.timers = GeventTimers()
        self.uids = itertools.count(1)


NODE = _Node()


def network() -> GeventNetwork:
    if NODE.network is None:
        NODE.network = GeventNetwork()
    return NODE.network


# -- options and set-up ------------------------------------------------------------------------
# (Locust's event hooks are untyped, hence the ignores on their decorators)


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    group = parser.add_argument_group("roomtrust")
    group.add_argument("--roomtrust-scenario", default="", help="the load scenario (YAML)")
    group.add_argument("--roomtrust-provision", default="", help="provision.json of the run")
    group.add_argument("--roomtrust-out", default="", help="directory for verdict.json")


def _option(environment: Environment, name: str) -> str:
    value = getattr(environment.parsed_options, name, "") if environment.parsed_options else ""
    return str(value or "")


def settings_of(scenario: LoadScenario) -> dict[str, Any]:
    """What workers need of the scenario (they parse no YAML and import no pydantic models)."""
    return {
        "name": scenario.name,
        "hold_s": scenario.load.hold_s,
        "operations": (
            scenario.load.operations.model_dump(mode="json") if scenario.load.operations else {}
        ),
        "classes": {k: c.model_dump(mode="json") for k, c in scenario.load.classes.items()},
    }


def hold_s() -> float:
    """How long a moderator keeps a conference open for the lobby."""
    return float(NODE.settings.get("hold_s", 6.0))


def operations() -> dict[str, Any]:
    """The operator's schedule: `push_config_at_s`, `renew_at_s` (None: never)."""
    schedule: dict[str, Any] = NODE.settings.get("operations") or {}
    return schedule


def apply_settings(environment: Environment, settings: dict[str, Any]) -> None:
    """Put the scenario's weights, fixed counts, pace and task weights on the user classes."""
    NODE.settings = settings
    classes: dict[str, dict[str, Any]] = settings["classes"]
    for user_class in environment.user_classes:
        kind = CLASS_KINDS.get(user_class.__name__)
        spec = classes.get(kind) if kind else None
        if spec is None:
            continue
        if spec["fixed_count"] is not None:
            user_class.fixed_count = spec["fixed_count"]
        else:
            user_class.fixed_count = 0
            user_class.weight = spec["weight"] or 1
        if spec["constant_throughput"] is not None:
            user_class.wait_time = constant_throughput(spec["constant_throughput"])
        elif spec["wait_s"] is not None:
            user_class.wait_time = between(*spec["wait_s"])
        named: dict[str, Any] = getattr(user_class, "named_tasks", {})
        if spec["tasks"] and named:
            user_class.tasks = [named[t] for t, w in spec["tasks"].items() for _ in range(w)]


def _set_up(environment: Environment, data: dict[str, Any]) -> None:
    apply_settings(environment, data["settings"])
    NODE.targets = data["targets"]
    for target in NODE.targets.values():
        for side in ("dm", "meeting"):
            if side in target:
                network().trust(target[side]["url"], target[side]["ca_pem"])


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Environment, **_kw: Any) -> None:
    # gevent's loop caches its clock; after a slow start (imports on a busy machine) the cached
    # time lags, and Locust's --run-time timer, armed next, would fire at once
    gevent.get_hub().loop.update_now()
    runner = environment.runner
    scenario_file = _option(environment, "roomtrust_scenario")
    if isinstance(runner, WorkerRunner):
        runner.register_message("roomtrust_setup", lambda msg, **_: _set_up(environment, msg.data))
        runner.register_message("roomtrust_identity", _identity_arrived)
        runner.register_message("roomtrust_board", _board_update)
        return
    if not scenario_file:
        log.warning("no --roomtrust-scenario: the user classes keep their own defaults")
        return
    from load.scenario import load_load_scenario

    NODE.scenario = load_load_scenario(scenario_file)
    apply_settings(environment, settings_of(NODE.scenario))
    provision_file = _option(environment, "roomtrust_provision")
    if provision_file:
        provision = json.loads(Path(provision_file).read_text())
        NODE.targets = provision["targets"]
        NODE.pool = {k: deque(v) for k, v in provision["identities"].items()}
    if isinstance(runner, MasterRunner):
        runner.register_message("roomtrust_claim", _claim_on_master)
        runner.register_message("roomtrust_board", _board_relay)
    elif isinstance(runner, LocalRunner):
        _set_up(environment, {"settings": NODE.settings, "targets": NODE.targets})
        runner.register_message("roomtrust_board", _board_update)


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _test_start(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner) and NODE.scenario is not None:
        data = {"settings": NODE.settings, "targets": NODE.targets}
        # sent before the spawn messages, so every worker is set up before its users start
        runner.send_message("roomtrust_setup", data)


# -- identities ----------------------------------------------------------------------------------


def _take(kind: str) -> dict[str, Any] | None:
    pool = NODE.pool.get(kind)
    if not pool:
        return None
    identity = pool.popleft()
    return {"identity": identity, "target": NODE.targets.get(identity["fleet"], {})}


def _claim_on_master(environment: Environment, msg: Any, **_kw: Any) -> None:
    answer = _take(msg.data["kind"]) or {}
    answer["uid"] = msg.data["uid"]
    assert environment.runner is not None
    environment.runner.send_message("roomtrust_identity", answer, client_id=msg.node_id)


def _identity_arrived(msg: Any, **_kw: Any) -> None:
    waiting = NODE.waiting.pop(msg.data["uid"], None)
    if waiting is not None:
        waiting.set(msg.data)


def claim(environment: Environment, kind: UserKind) -> tuple[dict[str, Any], dict[str, Any]]:
    """An identity of this kind and its fleet's targets, or StopUser when none is left."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        uid = f"{runner.client_id}:{next(NODE.uids)}"
        result: AsyncResult = AsyncResult()
        NODE.waiting[uid] = result
        runner.send_message("roomtrust_claim", {"kind": kind, "uid": uid})
        answer = result.get(timeout=CLAIM_TIMEOUT_S)
    else:
        answer = _take(kind) or {}
    if not answer.get("identity"):
        environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type=FLOW,
            name=f"claim {kind}",
            response_time=0,
            response_length=0,
            exception=RuntimeError(f"no provisioned {kind} identity left"),
            context={},
        )
        raise StopUser()
    target: dict[str, Any] = answer["target"]
    for side in ("dm", "meeting"):
        if side in target:
            network().trust(target[side]["url"], target[side]["ca_pem"])
    return answer["identity"], target


# -- the conference board ------------------------------------------------------------------------


def _board_relay(environment: Environment, msg: Any, **_kw: Any) -> None:
    assert environment.runner is not None
    environment.runner.send_message("roomtrust_board", msg.data)


def _board_update(msg: Any, **_kw: Any) -> None:
    entry = msg.data
    if entry.get("open"):
        NODE.board[entry["conference_id"]] = entry
    else:
        NODE.board.pop(entry["conference_id"], None)


def announce(environment: Environment, entry: dict[str, Any]) -> None:
    """Tell every participant, on every worker, that a conference opened (or closed)."""
    assert environment.runner is not None
    environment.runner.send_message("roomtrust_board", entry)


def pick_conference(fleet: str, fresh_s: float) -> dict[str, Any] | None:
    """An open conference of this fleet announced within `fresh_s` seconds, if any."""
    now = time.time()
    fresh = [
        e
        for e in NODE.board.values()
        if e["fleet"] == fleet and now - e["opened_at"] < fresh_s and e.get("open")
    ]
    return random.choice(fresh) if fresh else None


def wait_for_conference(fleet: str, fresh_s: float, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entry = pick_conference(fleet, fresh_s)
        if entry is not None:
            return entry
        gevent.sleep(0.2)
    return None


# -- the verdict -----------------------------------------------------------------------------------


def figures(environment: Environment) -> list[Figures]:
    from load.thresholds import Figures  # the master's only (workers import no pydantic models)

    stats = environment.stats
    rows = [*stats.entries.values(), stats.total]
    return [
        Figures(
            method=str(e.method or ""),
            name=e.name,
            requests=e.num_requests,
            failures=e.num_failures,
            p50_ms=float(e.get_response_time_percentile(0.5) or 0),
            p95_ms=float(e.get_response_time_percentile(0.95) or 0),
            rps=round(e.total_rps, 3),
        )
        for e in rows
        if e.num_requests or e.num_failures
    ]


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _verdict(environment: Environment, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or NODE.scenario is None or runner is None:
        return
    from load.thresholds import evaluate

    verdict = evaluate(NODE.scenario.load.thresholds, figures(environment))
    errors = sum(e["count"] for e in runner.exceptions.values())
    if errors:
        verdict.broken.append(f"the user code raised {errors} exception(s)")
        verdict.passed = False
    record = verdict.as_dict()
    record["scenario"] = NODE.scenario.name
    record["user_kinds"] = [k for k in USER_KINDS if k in NODE.scenario.load.classes]
    record["exceptions"] = [
        {"count": e["count"], "msg": e["msg"], "nodes": sorted(e["nodes"])}
        for e in runner.exceptions.values()
    ]
    out = _option(environment, "roomtrust_out")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "verdict.json").write_text(json.dumps(record, indent=1))
    for line in verdict.broken:
        log.error("threshold broken: %s", line)
    environment.process_exit_code = 0 if verdict.passed else 1
