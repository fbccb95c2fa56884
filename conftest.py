"""Project-wide pytest set-up.

- Every claim ID is a registered marker, so `-m DM-04` selects its scenarios.
- Every test outside `DATABASE_FREE` carries the `database` marker, so the PostgreSQL pass of CI
  (`-m database`) skips what no database can change: the sans-IO media core, the simulator, the
  Pulumi programs under mocks, the stack description, the layer contracts, and the compliance
  negative controls (their deliberately weak regions keep their store in SQLite whatever the
  run's database is). A test that opens a database, starts a region or a stack does not belong
  under these paths.
"""

from __future__ import annotations

import pytest

from roomtrust.claims import claim_ids

DATABASE_FREE = (
    "tests/media_core/",
    "tests/sim/",
    "tests/infra/",
    "tests/comply/test_comply_negative_controls.py",
    "tests/comply/checks/",
    "tests/protocol/test_stack.py",
    "tests/roomtrust/test_layers.py",
    "features/test_infra.py",
    "features/test_sim.py",
)


def pytest_configure(config: pytest.Config) -> None:
    for claim_id in claim_ids():
        config.addinivalue_line("markers", f"{claim_id}: scenarios that check claim {claim_id}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if not path.startswith(DATABASE_FREE):
            item.add_marker(pytest.mark.database)
        elif "schema_prefix" in getattr(item, "fixturenames", ()):
            # the fixture every live stack, region process and store depends on
            raise pytest.UsageError(f"{item.nodeid} reaches a database but is under DATABASE_FREE")


pytest_plugins = ["roomtrust.harness.plugin"]
