"""`roomtrust comply`: run the feature scenarios against one or more targets and write the report.

For each target the scenarios run in their own pytest process (pytest-bdd, with the comply plugin
loaded), which writes per-item results, Cucumber JSON and JUnit XML. The runner then decides a
verdict per claim and builds `reports/out/compliance/` with `reports.compliance`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.stack import StackError, read_stack
from reports.compliance import build_report, merge_cucumber, merge_junit
from roomtrust.claims import CATALOGUE, load_claims
from roomtrust.comply.catalogue import FEATURES, UNCHECKED, read_unchecked, scenario_refs
from roomtrust.comply.selection import RUN, compile_tags, decide
from roomtrust.comply.targets import ROOT, GraphTarget, LocalTarget, Target, write_spec
from roomtrust.comply.verdicts import (
    ClaimVerdict,
    ScenarioOutcome,
    claim_verdicts,
    counts,
    exit_code,
    scenario_outcomes,
)
from roomtrust.stack import launcher

DEFAULT_OUT = ROOT / "reports" / "out" / "compliance"
_GENERATED = ("evidence", "targets", "index.html", "compliance.json", "cucumber.json", "junit.xml")


@dataclass
class ComplyRun:
    report: Path
    verdicts: list[ClaimVerdict]
    counts: dict[str, int]
    exit_code: int


def _clear(out: Path) -> None:
    """Remove what an earlier run wrote (and only that)."""
    for name in _GENERATED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for pattern in ("results-*.json", "cucumber-*.json", "junit-*.xml", "pytest-*.log"):
        for path in out.glob(pattern):
            path.unlink()


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _run_target(
    target: Target,
    out: Path,
    features: Path,
    claims: Path,
    tags: str | None,
    cwd: Path,
    timeout: float | None,
) -> tuple[list[dict[str, Any]], str]:
    """Run one target's scenarios in a pytest process; returns its items and any run problem."""
    spec = write_spec(target, out / "targets" / f"{target.name}.json")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(features),
        "-p",
        "roomtrust.comply.plugin",
        f"--comply-target={spec}",
        f"--comply-out={out}",
        f"--comply-features={features}",
        f"--comply-claims={claims}",
        f"--cucumber-json={out / f'cucumber-{target.name}.json'}",
        f"--junitxml={out / f'junit-{target.name}.xml'}",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
    ]
    if tags:
        cmd.append(f"--comply-tags={tags}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = out / f"pytest-{target.name}.log"
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        log.write_text(f"$ {' '.join(cmd)}\n\n{proc.stdout}\n{proc.stderr}")
        returncode: int | str = proc.returncode
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"$ {' '.join(cmd)}\n\ntimed out after {timeout} s\n{_text(exc.stdout)}")
        returncode = "timeout"
    results = out / f"results-{target.name}.json"
    if not results.exists():
        return [], f"the pytest run wrote no results (exit {returncode}); see {log.name}"
    data = json.loads(results.read_text())
    problem = ""
    if data["collection_errors"]:
        nodes = ", ".join(e["node"] for e in data["collection_errors"])
        problem = f"a test module failed to load ({nodes}); see {log.name}"
    return data["items"], problem


def run_comply(
    targets: Sequence[Target],
    out: Path = DEFAULT_OUT,
    tags: str | None = None,
    allow_unchecked: bool = False,
    features: Path = FEATURES,
    claims_file: Path = CATALOGUE,
    unchecked_file: Path = UNCHECKED,
    cwd: Path = ROOT,
    timeout: float | None = None,
) -> ComplyRun:
    """Check every claim against the targets and write the report folder `out`."""
    compile_tags(tags)
    if not targets:
        raise ValueError("--target: at least one target is needed")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"--target: two targets share a name ({', '.join(names)})")
    out, features = out.resolve(), features.resolve()
    claims, refs = load_claims(claims_file), scenario_refs(features)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    outcomes: list[ScenarioOutcome] = []
    started: list[Path] = []
    try:
        for target in targets:
            due = [r for r in refs if decide(r.tags, target.kind, tags).status == RUN]
            items: list[dict[str, Any]] = []
            problem = ""
            if due:
                if isinstance(target, LocalTarget):
                    home = target.home.resolve()
                    before = _stack_pids(home)
                    if _stack_pids(launcher.start_as_up(home).home) != before:
                        started.append(home)
                items, problem = _run_target(
                    target, out, features, claims_file.resolve(), tags, cwd, timeout
                )
            outcomes += scenario_outcomes(refs, target.kind, target.name, tags, items, problem)
    finally:
        for home in started:
            launcher.stop(home)
    merge_cucumber(sorted(out.glob("cucumber-*.json")), out / "cucumber.json")
    merge_junit(sorted(out.glob("junit-*.xml")), out / "junit.xml")
    verdicts = claim_verdicts(claims, refs, outcomes, read_unchecked(unchecked_file))
    meta = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "targets": [f"{t.name} ({t.kind})" for t in targets],
        "tags": tags,
        "claims_file": str(claims_file),
        "allow_unchecked": allow_unchecked,
        "logs": sorted(p.name for p in out.glob("pytest-*.log")),
    }
    tally = counts(verdicts)
    report = build_report(out, verdicts, tally, meta)
    return ComplyRun(report, verdicts, tally, exit_code(verdicts, allow_unchecked))


def _stack_pids(home: Path) -> set[int]:
    try:
        stack = read_stack(home)
    except StackError:
        return set()
    return {ep.pid for ep in stack.endpoints()}


def list_claims(
    features: Path = FEATURES, claims_file: Path = CATALOGUE, unchecked_file: Path = UNCHECKED
) -> str:
    """`roomtrust comply --list`: each claim ID with the scenarios that check it."""
    claims, refs = load_claims(claims_file), scenario_refs(features)
    unchecked = read_unchecked(unchecked_file)
    lines = []
    for claim in claims:
        mine = [r for r in refs if claim.id in r.claims]
        if not mine:
            reason = unchecked.get(claim.id) or "not listed in features/UNCHECKED.md"
            lines.append(f"{claim.id}  (no scenario) UNCHECKED: {reason}")
            continue
        lines.append(f"{claim.id}  {len(mine)} scenario(s)")
        for ref in mine:
            targets = " ".join(f"@{t}" for t in ref.targets) or "(no target tag)"
            lines.append(f"    {ref.key}  {ref.name}  [{targets}]")
    return "\n".join(lines)


def comply_local(
    home: Path = Path(".roomtrust"), out: Path = DEFAULT_OUT, graph: bool = False
) -> ComplyRun:
    """What `roomtrust demo` calls at its end: every claim against the local stack (and, with
    `graph=True`, against the Pulumi graphs of infra/stacks too, so infra claims get a verdict).

    `run.report` is the path of index.html; `run.counts` maps PASS, FAIL, UNCHECKED and
    NOT APPLICABLE to their numbers of claims. UNCHECKED claims do not make `run.exit_code` 1."""
    targets: list[Target] = [LocalTarget(home)]
    if graph:
        targets.append(GraphTarget("graph", "graph"))
    return run_comply(targets, out=out, allow_unchecked=True)
