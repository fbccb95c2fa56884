"""Project-wide pytest set-up: every claim ID is a registered marker, so `-m DM-04` selects its scenarios."""

from __future__ import annotations

import pytest

from roomtrust.claims import claim_ids


def pytest_configure(config: pytest.Config) -> None:
    for claim_id in claim_ids():
        config.addinivalue_line("markers", f"{claim_id}: scenarios that check claim {claim_id}")


pytest_plugins = ["roomtrust.testing"]
