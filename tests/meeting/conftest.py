"""Fixtures for the meeting tests: an administrator in region sa of the live meeting stack (the
harness's `meeting_stack`), and a fresh store for domain tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from protocol.meeting_client import MeetingApi
from protocol.stack import Stack
from services.common.db import make_engine, migrate, session_factory, store_location
from services.common.runtime import RegionRuntime, open_region
from services.meeting.main import MIGRATIONS


@pytest.fixture
def admin_sa(meeting_stack: Stack) -> Iterator[MeetingApi]:
    """The administrator of a new enterprise in region sa."""
    endpoint = meeting_stack.endpoint("meeting", "sa")
    url, ca = endpoint.url, endpoint.ca_file
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
