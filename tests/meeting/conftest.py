"""Fixtures for the meeting tests: the four meeting regions as live processes in a temporary home
(SQLite files, or PostgreSQL schemas under this run's prefix), and a fresh store for domain tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from roomtrust.testing import region_endpoint
from services.common.db import make_engine, migrate, session_factory, store_location
from services.common.runtime import RegionRuntime, open_region
from services.meeting import testing as shared_stack
from services.meeting.client import MeetingApi
from services.meeting.main import MIGRATIONS


@pytest.fixture(scope="session")
def meeting_stack(
    tmp_path_factory: pytest.TempPathFactory, schema_prefix: str
) -> Iterator[dict[str, Any]]:
    stack = shared_stack.acquire(tmp_path_factory.mktemp("meeting-stack"), schema_prefix)
    try:
        yield stack
    finally:
        shared_stack.release()


@pytest.fixture
def admin_sa(meeting_stack: dict[str, Any]) -> Iterator[MeetingApi]:
    """The administrator of a new enterprise in region sa."""
    url, ca = region_endpoint(meeting_stack, "meeting", "sa")
    with MeetingApi(url, ca) as api:
        api.register_enterprise()
        yield api


@pytest.fixture
def store(tmp_path: Path, schema_prefix: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    """A migrated meeting store of its own (SQLite in tmp_path, or a PostgreSQL schema)."""
    region = f"u{secrets.token_hex(4)}"
    url, schema = store_location(
        os.environ.get("ROOMTRUST_DATABASE_URL"), tmp_path, "meeting", region, schema_prefix
    )
    engine = make_engine(url, schema)
    migrate(engine, MIGRATIONS)
    yield engine, session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def inprocess_runtime(
    tmp_path_factory: pytest.TempPathFactory, schema_prefix: str
) -> Iterator[RegionRuntime]:
    """A meeting region opened in this process (own home; SQLite or a PostgreSQL schema)."""
    home = tmp_path_factory.mktemp("inprocess")
    region = "".join(secrets.choice("abcdefgh") for _ in range(6))  # conference IDs need letters
    runtime = open_region("meeting", region, home, MIGRATIONS)
    yield runtime
    runtime.engine.dispose()
