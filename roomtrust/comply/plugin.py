"""The pytest plugin behind `roomtrust comply` (loaded with `-p roomtrust.comply.plugin`).

With `--comply-target SPEC` it keeps only the scenarios the target can check (see `selection`),
serves `live_stack` and `meeting_stack` from the target's running stack instead of fresh ones,
gives every scenario an evidence folder under `--comply-out`, and writes `results.json`: one record
per test item with its scenario key (`feature:line`), outcome, failure text and evidence files.
Without the option it does nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from protocol.stack import Stack
from roomtrust.claims import load_claims
from roomtrust.comply.catalogue import FEATURES
from roomtrust.comply.evidence import Evidence, slug
from roomtrust.comply.selection import RUN, URL_SAFE_TAG, decide
from roomtrust.comply.targets import Target, load_target

RESULTS = "results.json"


@dataclass
class ComplySession:
    target: Target
    out: Path
    features: Path
    tags: str | None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    collection_errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def evidence_root(self) -> Path:
        return self.out / "evidence" / self.target.name

    def evidence_for(self, nodeid: str) -> Evidence:
        return Evidence(self.evidence_root / slug(nodeid))


SESSION = pytest.StashKey[ComplySession]()
_active: list[ComplySession] = []  # reports reach hooks without their config


def comply_session(config: pytest.Config) -> ComplySession | None:
    return config.stash.get(SESSION, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("roomtrust comply")
    group.addoption("--comply-target", help="target spec (JSON) to check")
    group.addoption("--comply-out", default="reports/out/compliance", help="report folder")
    group.addoption("--comply-tags", default=None, help="tag expression narrowing the run")
    group.addoption("--comply-features", default=str(FEATURES), help="features folder")
    group.addoption("--comply-claims", default=None, help="claims catalogue (markdown)")


class _TargetStack:
    """Serves `live_stack` and `meeting_stack` from the target, so scenarios check the stack that
    comply checks (the meeting and media features would otherwise start a meeting stack of their
    own, and a target's meeting regions, replicas or not, would go unchecked)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def _stack(self) -> Stack:
        if self.target.kind == "local":
            from roomtrust.stack import launcher

            return launcher.start_as_up(Path(self.target.spec["home"]))
        return self.target.stack()

    @pytest.fixture(scope="session")
    def live_stack(self) -> Stack:
        return self._stack()

    @pytest.fixture(scope="session")
    def meeting_stack(self) -> Stack:
        return self._stack()


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("--comply-target")
    if not spec:
        return
    claims_path = config.getoption("--comply-claims")
    claims = load_claims(Path(claims_path)) if claims_path else load_claims()
    for claim in claims:
        config.addinivalue_line("markers", f"{claim.id}: claim {claim.id}")
    for tag in ("live", "graph", "sim", URL_SAFE_TAG):
        config.addinivalue_line("markers", f"{tag}: compliance target tag")
    target = load_target(Path(spec))
    session = ComplySession(
        target=target,
        out=Path(config.getoption("--comply-out")).resolve(),
        features=Path(config.getoption("--comply-features")).resolve(),
        tags=config.getoption("--comply-tags"),
    )
    config.stash[SESSION] = session
    _active[:] = [session]
    config.pluginmanager.register(_TargetStack(target), "roomtrust-comply-stack")


def _scenario_key(item: pytest.Item, features: Path) -> tuple[str, str] | None:
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))  # type: ignore[arg-type]
    if template is None:
        return None
    path = Path(template.feature.filename).resolve()
    try:
        rel = path.relative_to(features).as_posix()
    except ValueError:
        rel = path.as_posix()
    return f"{rel}:{template.line_number}", template.name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = comply_session(config)
    if session is None:
        return
    keep, drop = [], []
    for item in items:
        found = _scenario_key(item, session.features)
        tags = {mark.name for mark in item.iter_markers()}
        if found is None or decide(tags, session.target.kind, session.tags).status != RUN:
            drop.append(item)
            continue
        key, name = found
        session.items[item.nodeid] = {
            "nodeid": item.nodeid,
            "key": key,
            "scenario": name,
            "outcome": "not run",
            "message": "",
            "duration": 0.0,
        }
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed and _active:
        _active[0].collection_errors.append(
            {"node": report.nodeid, "message": str(report.longrepr)}
        )


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr or "")


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record = _active[0].items.get(report.nodeid) if _active else None
    if record is None:
        return
    record["duration"] += report.duration
    if report.when == "call" and record["outcome"] == "not run":
        record["outcome"] = report.outcome
    if report.failed:
        # a broken setup or teardown is an error of the check, not a verdict on the claim
        record["outcome"] = "failed" if report.when == "call" else "error"
        record["message"] = f"{report.when}: {_message(report)}"
        record["detail"] = str(report.longrepr)[-6000:]
    elif report.skipped:
        record["outcome"] = "skipped"
        record["message"] = _message(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    yield
    state = comply_session(item.config)
    record = state.items.get(item.nodeid) if state else None
    if state is None or record is None:
        return
    evidence = state.evidence_for(item.nodeid)
    text = f"{item.nodeid}\noutcome: {record['outcome']}\n\nsteps run:\n{_steps(item)}"
    if record["message"]:
        text += f"\n{record['message']}\n"
    if record.get("detail"):
        text += f"\n{record['detail']}\n"
    evidence.write_text("outcome.txt", text)
    record["evidence"] = [p.relative_to(state.out).as_posix() for p in evidence.files()]
    record["shown"] = evidence.shown()


def _steps(item: pytest.Item) -> str:
    from pytest_bdd.reporting import scenario_reports_registry

    report = scenario_reports_registry.get(item)
    if report is None:
        return "  (none)\n"
    lines = [
        f"  {s['keyword']} {s['name']}  [line {s['line_number']}, "
        f"{'FAILED' if s['failed'] else 'ok'}, {s['duration']:.3f} s]\n"
        for s in report.serialize()["steps"]
    ]
    return "".join(lines) or "  (none)\n"


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = comply_session(session.config)
    if state is None:
        return
    state.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "target": state.target.to_spec(),
        "tags": state.tags,
        "pid": os.getpid(),
        "items": list(state.items.values()),
        "collection_errors": state.collection_errors,
    }
    path = state.out / f"results-{state.target.name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
