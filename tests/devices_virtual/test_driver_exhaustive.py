"""Every driver of the device agent and of the meeting client dispatches its actions with one
exhaustive `match` ending in `assert_never`, so mypy names an action a driver does not handle.

The proof runs mypy on temporary copies of the driver modules: each untouched copy type-checks
(the negative control), and a copy with one `case` handler deleted fails with the `assert_never`
error naming the action whose handler went.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dispatch:
    module: str  # path from the repository root
    method: str  # Class.method holding the match
    drop: str  # the action whose `case` the mutated copy loses


DISPATCHES = (
    Dispatch("devices_virtual/driver/device.py", "VirtualDevice._do", "SendChannel"),
    Dispatch("devices_virtual/driver/meeting.py", "VirtualMeetingClient._do", "SendSocket"),
    Dispatch("sim/driver.py", "Episode._do", "DownloadFile"),
    Dispatch("sim/driver.py", "Episode._do", "InstallImage"),
    Dispatch("load/client/driver.py", "DeviceDriver._do", "DownloadFile"),
    Dispatch("load/client/driver.py", "MeetingDriver._do", "Show"),
)


def _match(source: str, method: str) -> ast.Match:
    """The one `match` statement of `Class.method`, checked to end in `case _: assert_never`."""
    class_name, function_name = method.split(".")
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    (function,) = [
        n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == function_name
    ]
    (match,) = [n for n in ast.walk(function) if isinstance(n, ast.Match)]
    last = match.cases[-1]
    assert isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None, method
    (call,) = last.body
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call), method
    assert isinstance(call.value.func, ast.Name) and call.value.func.id == "assert_never", method
    return match


def _handled(match: ast.Match) -> list[str]:
    names = []
    for case in match.cases[:-1]:
        pattern = case.pattern
        assert isinstance(pattern, ast.MatchClass) and isinstance(pattern.cls, ast.Name)
        names.append(pattern.cls.id)
    return names


def without_case(source: str, method: str, action: str) -> str:
    """`source` with the `case <action>():` handler of `method`'s match deleted."""
    match = _match(source, method)
    (case,) = [
        c
        for c in match.cases
        if isinstance(c.pattern, ast.MatchClass)
        and isinstance(c.pattern.cls, ast.Name)
        and c.pattern.cls.id == action
    ]
    first, last = case.pattern.lineno, case.body[-1].end_lineno
    assert last is not None
    lines = source.splitlines(keepends=True)
    return "".join(lines[: first - 1] + lines[last:])


def run_mypy(files: list[Path], cache: Path) -> str:
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--follow-imports=silent",
        "--cache-dir",
        str(cache),
        "--no-error-summary",
        "--show-error-codes",
        *map(str, files),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return done.stdout + done.stderr


def test_every_dispatch_ends_in_assert_never_and_handles_each_action_once() -> None:
    for dispatch in DISPATCHES:
        handled = _handled(_match((ROOT / dispatch.module).read_text(), dispatch.method))
        assert dispatch.drop in handled, dispatch
        assert len(handled) == len(set(handled)), f"{dispatch.method} handles an action twice"


def test_without_case_removes_exactly_one_handler() -> None:
    dispatch = DISPATCHES[0]
    source = (ROOT / dispatch.module).read_text()
    mutated = without_case(source, dispatch.method, dispatch.drop)
    before = _handled(_match(source, dispatch.method))
    after = _handled(_match(mutated, dispatch.method))
    assert sorted(set(before) - set(after)) == [dispatch.drop]
    assert len(after) == len(before) - 1


def test_mypy_names_the_action_whose_handler_is_removed(tmp_path: Path) -> None:
    tree = tmp_path / "tree" / "driver_copies"
    tree.mkdir(parents=True)
    (tree / "__init__.py").write_text("")
    intact: dict[Path, Dispatch] = {}
    mutated: dict[Path, Dispatch] = {}
    for index, dispatch in enumerate(DISPATCHES):
        source = (ROOT / dispatch.module).read_text()
        copy = tree / f"intact_{index}.py"
        shutil.copyfile(ROOT / dispatch.module, copy)
        intact[copy] = dispatch
        broken = tree / f"without_{dispatch.drop.lower()}_{index}.py"
        broken.write_text(without_case(source, dispatch.method, dispatch.drop))
        mutated[broken] = dispatch
    output = run_mypy([*intact, *mutated], tmp_path / "mypy-cache")
    errors = [line for line in output.splitlines() if ": error:" in line]
    for copy, dispatch in intact.items():
        mine = [e for e in errors if f"{copy.name}:" in e]
        assert not mine, f"the untouched copy of {dispatch.module} fails mypy: {mine}"
    for copy, dispatch in mutated.items():
        mine = [e for e in errors if f"{copy.name}:" in e]
        assert mine, f"mypy accepts {dispatch.method} without its {dispatch.drop} handler"
        assert all("assert_never" in e and f'"{dispatch.drop}"' in e for e in mine), mine
