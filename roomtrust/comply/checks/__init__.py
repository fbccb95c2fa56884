"""The checks behind the Then steps of the feature files, as plain functions of their evidence.

A Then step gathers evidence from its target (HTTP answers, table counts, stored rows, recorded
connections, simulation records) and hands it to a check; the check raises `CheckFailed` with a
reason a reader of the compliance report can act on, or returns. Because a check sees only its
evidence, the negative-control suite (tests/comply/checks/test_checks_<family>.py) can feed each
one evidence in which its property is false and show that it fails, and feed it empty evidence and
show that a check which selects nothing fails too.

Every check is registered under its family (one per feature area, or `common` for the ones several
families share), so a test can prove that each Then step of every steps module calls a registered
check and that each registered check has a negative control
(tests/comply/test_comply_negative_controls.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from roomtrust.comply.evidence import EmptySelection

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=Sized)

FAMILIES = (
    "common",
    "dm",
    "dm_operations",
    "devices",
    "firmware",
    "meeting",
    "media",
    "interop",
    "sim",
    "under_load",
    "tls",
    "infra",
)


class CheckFailed(AssertionError):
    """The evidence shows the checked property is false; the message says how."""


@dataclass(frozen=True)
class Check:
    family: str
    name: str
    func: Callable[..., None]

    @property
    def key(self) -> str:
        return f"{self.family}.{self.name}"

    @property
    def summary(self) -> str:
        return (self.func.__doc__ or self.name).strip().splitlines()[0]


REGISTRY: dict[str, Check] = {}


def check(family: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Register a check function of `family` (its key is `family.function_name`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown check family {family!r}")

    def register(func: Callable[P, None]) -> Callable[P, None]:
        entry = Check(family, func.__name__, func)
        if entry.key in REGISTRY:
            raise ValueError(f"check {entry.key} is registered twice")
        REGISTRY[entry.key] = entry
        return func

    return register


def require(condition: object, reason: str) -> None:
    """Fail the check with `reason` unless `condition` holds."""
    if not condition:
        raise CheckFailed(reason)


def selected(items: S, what: str) -> S:
    """`items` if it holds anything; otherwise the check selected nothing and fails."""
    if not len(items):
        raise EmptySelection(f"selected no {what}: nothing to check")
    return items


def counted(count: int, what: str) -> int:
    """`count` if it is positive; otherwise the check had nothing to count and fails."""
    if count <= 0:
        raise EmptySelection(f"selected no {what}: nothing to check")
    return count


def names_of(items: Iterable[Any]) -> list[str]:
    """Sorted text of a collection, for readable reasons."""
    return sorted(str(i) for i in items)


def all_checks() -> dict[str, Check]:
    """Every registered check (importing each family module registers its checks)."""
    from roomtrust.comply.checks import (  # noqa: F401
        common,
        devices,
        dm,
        dm_operations,
        firmware,
        infra,
        interop,
        media,
        meeting,
        sim,
        tls,
        under_load,
    )

    return dict(REGISTRY)
