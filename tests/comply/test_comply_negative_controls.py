"""Every verdict comes from a registered check, and every registered check can fail.

- Each family of `roomtrust.comply.checks` has its negative controls in
  tests/comply/checks/test_checks_<family>.py (good evidence, broken variants, an empty selection);
  here a test shows that every registered check has them.
- The meta-test: every Then step of every steps module in features/steps/ (found, not listed)
  calls a registered check, directly or through a function of its own module, and makes no
  verdict of its own (an `assert`, `require`, ...). Its own negative control is a synthetic steps
  module with a bare-assert Then step, which it must flag.
- The table of reports/compliance/README.md ("Negative controls") is generated from the feature
  files, their steps and the controls; `test_the_readme_lists_every_negative_control` keeps it in
  step.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import FeatureParser
from pytest_bdd.steps import step_function_context_registry

from roomtrust.comply.catalogue import FEATURES
from roomtrust.comply.checks import (
    FAMILIES,
    Check,
    CheckFailed,
    all_checks,
    counted,
    require,
    selected,
)
from roomtrust.comply.evidence import EmptySelection, nonempty
from roomtrust.comply.negative import Controls

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "reports" / "compliance" / "README.md"
CONTROLS_DIR = Path(__file__).resolve().parent / "checks"
STEPS = ROOT / "features" / "steps"
THIS = "tests/comply/test_comply_negative_controls.py"

# -- the controls of every family ------------------------------------------------------------------


def controls_module(family: str) -> types.ModuleType:
    """tests/comply/checks/test_checks_<family>.py, as pytest imports it (or as a test session
    that did not collect it would)."""
    path = CONTROLS_DIR / f"test_checks_{family}.py"
    module = sys.modules.get(path.stem)
    if module is not None and Path(str(module.__file__)).resolve() == path:
        return module
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, f"no module of controls for {family}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def family_controls() -> dict[str, list[Controls]]:
    return {family: list(controls_module(family).CONTROLS) for family in FAMILIES}


def test_every_family_has_a_module_of_negative_controls() -> None:
    missing = [f for f in FAMILIES if not (CONTROLS_DIR / f"test_checks_{f}.py").exists()]
    assert not missing, f"families without tests/comply/checks/test_checks_<family>.py: {missing}"
    extra = {p.stem.removeprefix("test_checks_") for p in CONTROLS_DIR.glob("test_checks_*.py")}
    assert extra <= set(FAMILIES), f"modules of controls for unknown families: {extra}"


def test_every_registered_check_has_a_negative_control() -> None:
    by_family = family_controls()
    controlled = [c.key for found in by_family.values() for c in found]
    assert sorted(set(controlled)) == sorted(controlled), "a check is controlled twice"
    missing = set(all_checks()) - set(controlled)
    assert not missing, f"checks without a negative control: {sorted(missing)}"
    astray = {
        c.key: family
        for family, found in by_family.items()
        for c in found
        if c.key.split(".")[0] != family
    }
    assert not astray, f"controls in another family's module: {astray}"
    assert all(c.broken for found in by_family.values() for c in found)


def test_every_check_fails_on_empty_evidence_or_says_why_it_has_none() -> None:
    unexplained = [
        c.key
        for found in family_controls().values()
        for c in found
        if not c.single and not c.empty_cases()
    ]
    assert not unexplained, (
        "checks with no broken variant that selects nothing (and no `single` reason): "
        f"{unexplained}"
    )


# -- every Then step calls a registered check --------------------------------------------------------

# what makes a verdict outside a registered check
INLINE_VERDICTS = (require, selected, counted, nonempty, CheckFailed, EmptySelection, pytest.fail)


def steps_modules(folder: Path = STEPS) -> list[Path]:
    """The steps modules of a folder: every module but the package's own."""
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def _body(func: Callable[..., Any]) -> Iterator[ast.AST]:
    """Every node of a function's body (its decorators left out), nested code included."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    for statement in definition.body:
        yield from ast.walk(statement)


def _resolve(node: ast.expr, scope: Mapping[str, Any]) -> Any:
    """What a called name or dotted name refers to in a module's scope (modules and classes are
    looked into; anything else is left unresolved)."""
    if isinstance(node, ast.Name):
        return scope.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, types.ModuleType) or inspect.isclass(base):
            return getattr(base, node.attr, None)
    return None


def checks_called(func: Callable[..., Any], seen: set[Any] | None = None) -> list[Check]:
    """The registered checks `func` calls, itself or through functions of its own module."""
    seen = set() if seen is None else seen
    seen.add(func)
    registered = list(all_checks().values())
    found: list[Check] = []
    for node in _body(func):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, func.__globals__)
        found += [c for c in registered if c.func is target]
        if (
            inspect.isfunction(target)
            and target.__module__ == func.__module__
            and target.__name__ != "<lambda>"
            and target not in seen
        ):
            found += checks_called(target, seen)
    return list(dict.fromkeys(found))


def _narrows(test: ast.expr) -> bool:
    """`x is not None`: an assert that only narrows a type for the type checker."""
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.IsNot)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def inline_verdicts(func: Callable[..., Any]) -> list[str]:
    """The verdicts a step makes in its own body rather than in a registered check."""
    first = func.__code__.co_firstlineno
    found = []
    for node in _body(func):
        if isinstance(node, ast.Assert) and not _narrows(node.test):
            found.append(f"line {first + node.lineno - 1}: assert {ast.unparse(node.test)}")
        elif isinstance(node, ast.Call):
            target = _resolve(node.func, func.__globals__)
            if any(target is v for v in INLINE_VERDICTS) or target is pytest.raises:
                found.append(f"line {first + node.lineno - 1}: {ast.unparse(node.func)}(...)")
    return found


def then_steps(module: types.ModuleType) -> dict[str, Callable[..., Any]]:
    """Each Then step (or untyped step) the module defines: its step text -> its function."""
    return {
        context.parser.name: context.step_func
        for context in list(step_function_context_registry.values())
        if context.type in ("then", None) and context.step_func.__module__ == module.__name__
    }


def bare_then_steps(module: types.ModuleType) -> list[str]:
    """The Then steps of a module that call no registered check."""
    return sorted(text for text, func in then_steps(module).items() if not checks_called(func))


def then_steps_with_inline_verdicts(module: types.ModuleType) -> dict[str, list[str]]:
    found = {text: inline_verdicts(func) for text, func in then_steps(module).items()}
    return {text: verdicts for text, verdicts in sorted(found.items()) if verdicts}


def steps_module(path: Path) -> types.ModuleType:
    return importlib.import_module(f"features.steps.{path.stem}")


@pytest.mark.parametrize("path", steps_modules(), ids=lambda p: p.stem)
def test_every_then_step_calls_a_registered_check(path: Path) -> None:
    module = steps_module(path)
    assert then_steps(module), f"{path.name} defines no Then step"
    bare = bare_then_steps(module)
    assert not bare, f"Then steps of {path.name} that call no registered check: {bare}"


@pytest.mark.parametrize("path", steps_modules(), ids=lambda p: p.stem)
def test_no_then_step_makes_a_verdict_of_its_own(path: Path) -> None:
    inline = then_steps_with_inline_verdicts(steps_module(path))
    assert not inline, f"Then steps of {path.name} that judge outside a registered check: {inline}"


SYNTHETIC_STEPS = '''\
"""A steps module as a careless author would write it."""

from pytest_bdd import given, then

from roomtrust.comply.checks import common, require


@given("an answer", target_fixture="status")
def _answer() -> int:
    return 200


@then("the answer is checked")
def _checked(status: int) -> None:
    common.status_is(status, 200, "the answer")


@then("the answer is asserted")
def _asserted(status: int) -> None:
    assert status == 200, "not 200"


def _helper(status: int) -> None:
    common.status_is(status, 200, "the answer")


@then("the answer is checked by a helper")
def _through_helper(status: int) -> None:
    _helper(status)


@then("the answer is checked and asserted")
def _checked_and_asserted(status: int | None) -> None:
    assert status is not None
    common.status_is(status, 200, "the answer")
    assert status < 300


@then("the answer is required")
def _required(status: int) -> None:
    require(status == 200, "not 200")
'''


@pytest.fixture
def synthetic_steps(tmp_path: Path) -> Iterator[types.ModuleType]:
    """The synthetic steps module, in a steps folder of its own, imported under a fresh name."""
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "careless_steps.py").write_text(SYNTHETIC_STEPS)
    [path] = steps_modules(folder)
    name = f"careless_steps_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def test_the_meta_test_flags_a_then_step_that_calls_no_registered_check(
    synthetic_steps: types.ModuleType,
) -> None:
    assert sorted(then_steps(synthetic_steps)) == [
        "the answer is asserted",
        "the answer is checked",
        "the answer is checked and asserted",
        "the answer is checked by a helper",
        "the answer is required",
    ]
    assert bare_then_steps(synthetic_steps) == ["the answer is asserted", "the answer is required"]
    inline = then_steps_with_inline_verdicts(synthetic_steps)
    assert {text: [v.split(": ", 1)[1] for v in found] for text, found in inline.items()} == {
        "the answer is asserted": ["assert status == 200"],
        "the answer is checked and asserted": ["assert status < 300"],
        "the answer is required": ["require(...)"],
    }
    line = SYNTHETIC_STEPS.splitlines().index("    assert status < 300") + 1
    assert inline["the answer is checked and asserted"] == [f"line {line}: assert status < 300"]


# -- the README table ----------------------------------------------------------------------------

BINDING = re.compile(r"^from features\.steps\.(\w+) import \*", re.MULTILINE)
SCENARIO_CONTROLS = {
    "dm": "test_checks_dm.py::"
    "test_dm_scenarios_fail_against_a_dm_region_that_enrolls_anyone_and_stores_anything",
    "dm_operations": "test_checks_dm_operations.py::"
    "test_dm_operations_scenario_fails_against_a_dm_region_that_raises_no_alert",
    "devices": "test_checks_devices.py::"
    "test_devices_scenarios_fail_on_a_recorded_fleet_that_breaks_each_claim",
    "meeting": "test_checks_meeting.py::"
    "test_meeting_scenarios_fail_against_a_meeting_region_without_lobby_and_with_a_switch",
    "sim": "test_checks_sim.py::"
    "test_sim_scenarios_fail_on_simulation_records_with_a_misplaced_conference_and_a_dropped_call",
}


def feature_bindings() -> dict[str, list[str]]:
    """Each feature file -> the steps modules its test module binds (features/test_<name>.py)."""
    found = {}
    for binding in sorted((ROOT / "features").glob("test_*.py")):
        feature = binding.stem.removeprefix("test_")
        if (FEATURES / f"{feature}.feature").exists():
            found[feature] = BINDING.findall(binding.read_text())
    return found


def step_checks(feature: str, modules: list[str]) -> dict[str, list[Check]]:
    """Each step of a feature file (`Then <text>`) -> the registered checks its step definition
    calls; every Then step is listed, Given and When steps only when they call one."""
    for name in modules:
        importlib.import_module(f"features.steps.{name}")
    names = {f"features.steps.{name}" for name in modules}
    contexts = [
        c for c in list(step_function_context_registry.values()) if c.step_func.__module__ in names
    ]
    parsed = FeatureParser(str(FEATURES), f"{feature}.feature").parse()
    found: dict[str, list[Check]] = {}
    for template in parsed.scenarios.values():
        for step in template.steps:
            label = f"{step.type.capitalize()} {step.name}"
            if label in found:
                continue
            matching = [
                c
                for c in contexts
                if c.type in (step.type, None) and c.parser.is_matching(step.name)
            ]
            assert matching, f"{feature}: no step definition for {label!r}"
            calls = checks_called(matching[-1].step_func)
            if calls or step.type == "then":
                found[label] = calls
    return found


def negative_controls_table() -> str:
    """The markdown table of reports/compliance/README.md: feature, step, check, controls."""
    cases = {c.key: list(c.broken) for found in family_controls().values() for c in found}
    lines = [
        "| feature | step | check | negative controls "
        "(`tests/comply/checks/test_checks_<family>.py::"
        "test_a_check_fails_when_its_property_is_broken[<check>-<case>]`) |",
        "|---|---|---|---|",
    ]
    for feature, modules in feature_bindings().items():
        for step, used in step_checks(feature, modules).items():
            for check in used:
                controls = ", ".join(f"`{case}`" for case in cases[check.key])
                lines.append(f"| {feature} | {step} | `{check.key}` | {controls} |")
    lines += [
        "",
        "| feature | whole scenarios against a fixture target |",
        "|---|---|",
        *(f"| {f} | `tests/comply/checks/{test}` |" for f, test in SCENARIO_CONTROLS.items()),
    ]
    return "\n".join(lines) + "\n"


def test_the_readme_lists_every_negative_control() -> None:
    text = README.read_text()
    start, end = "<!-- negative-controls:start -->\n", "<!-- negative-controls:end -->"
    assert start in text and end in text, "README lacks the negative-controls markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == negative_controls_table(), (
        "the table is out of date; regenerate it with "
        f"`python -c 'from tests.comply.test_comply_negative_controls import "
        f'negative_controls_table as t; print(t(), end="")\'` (see {THIS})'
    )
