"""Fixtures for the infrastructure tests: every stack's graph, snapshotted once per session."""

from __future__ import annotations

from typing import Any

import pytest

from infra.snapshot import all_stack_graphs


@pytest.fixture(scope="session")
def stack_graphs() -> dict[str, dict[str, Any]]:
    graphs = all_stack_graphs()
    assert graphs, "no stack was snapshotted"
    return graphs
