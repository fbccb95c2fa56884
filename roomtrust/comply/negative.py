"""Negative controls of the registered checks: the shape the suite gives them.

A PASS in the compliance report means something only if the check behind it can fail. Each
registered check (`roomtrust.comply.checks`) has one `Controls`:

- `good`: evidence on which the check passes, so a failure in a broken case is due to the break
  and not to a check that always fails;
- `broken`: variants of that evidence (case -> the arguments overridden, and a text the failure
  must contain), each making the checked property false;
- among them, a variant that selects nothing, which must fail as "nothing to check"
  (`EmptySelection`), unless `single` says why the check's evidence is one value with nothing to
  select (an HTTP status, a flag).

The controls of each family are in tests/comply/checks/test_checks_<family>.py. There, whole
scenarios of the real feature files also run (`FeatureRun`, with pytester) against fixture targets
that break a claim on purpose (`roomtrust.comply.fixture_regions`), and must fail in the step that
checks it.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from roomtrust.comply.catalogue import FEATURES
from roomtrust.comply.checks import all_checks
from roomtrust.comply.evidence import EmptySelection


def key_of(func: Callable[..., None]) -> str:
    """The registry key (`family.name`) of a check function; LookupError if it is not one."""
    for entry in all_checks().values():
        if entry.func is func:
            return entry.key
    raise LookupError(f"{getattr(func, '__qualname__', func)} is not a registered check")


@dataclass(frozen=True)
class Case:
    """One broken variant: the check, the whole evidence handed to it, the text its failure must
    contain."""

    id: str
    check: Callable[..., None]
    evidence: Mapping[str, Any]
    reason: str

    def failure(self) -> AssertionError | None:
        """How the check fails on this evidence, or None when it passes."""
        try:
            self.check(**self.evidence)
        except AssertionError as failed:
            return failed
        return None


@dataclass(frozen=True)
class Controls:
    """A check, evidence on which it passes, and its broken variants."""

    check: Callable[..., None]
    good: Mapping[str, Any]
    broken: Mapping[str, tuple[Mapping[str, Any], str]]
    single: str = ""  # why the evidence is one value with nothing to select, if it is

    @property
    def key(self) -> str:
        return key_of(self.check)

    def cases(self) -> list[Case]:
        return [
            Case(f"{self.key}-{name}", self.check, {**self.good, **overrides}, reason)
            for name, (overrides, reason) in self.broken.items()
        ]

    def empty_cases(self) -> list[Case]:
        """The broken variants that fail as a selection of nothing."""
        return [c for c in self.cases() if isinstance(c.failure(), EmptySelection)]


def all_cases(controls: Sequence[Controls]) -> list[Case]:
    """Every broken variant of every check in `controls`."""
    return [case for c in controls for case in c.cases()]


INNER_ARGS = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning")


class FeatureRun:
    """A feature file of features/ copied into a pytester folder with a module that binds it."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def bind(self, family: str, body: str) -> None:
        shutil.copy(FEATURES / f"{family}.feature", self.path / f"{family}.feature")
        self.pytester.makepyfile(**{f"test_{family}_control": textwrap.dedent(body)})

    def inline(self, *args: str) -> pytest.HookRecorder:
        return self.pytester.inline_run(*args, *INNER_ARGS)

    def outcomes(self, *args: str) -> dict[str, str]:
        """Each test that ran -> 'passed', or the failing phase and its crash message."""
        outcome: dict[str, str] = {}
        for report in self.inline(*args).getreports("pytest_runtest_logreport"):
            name = report.nodeid.split("::")[-1]
            if report.failed:
                crash = getattr(report.longrepr, "reprcrash", None)
                outcome[name] = f"{report.when}: {crash.message if crash else report.longrepr}"
            elif report.when == "call":
                outcome.setdefault(name, "passed")
        return outcome
