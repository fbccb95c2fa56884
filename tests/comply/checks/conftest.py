"""Fixtures of the per-family negative controls: a real feature file bound in a pytester folder,
run against a fixture target, and the outcome of each of its scenarios."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from roomtrust.comply.fixture_regions import WeakDmRegion
from roomtrust.comply.negative import FeatureRun


@pytest.fixture
def feature_run(pytester: pytest.Pytester) -> FeatureRun:
    return FeatureRun(pytester)


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture regions keep their store in SQLite under the stack home."""
    monkeypatch.delenv("ROOMTRUST_DATABASE_URL", raising=False)


@pytest.fixture
def weak_dm(tmp_path: Path, no_postgres: None) -> Iterator[WeakDmRegion]:
    with WeakDmRegion(tmp_path / "weak-stack", "us") as region:
        yield region
