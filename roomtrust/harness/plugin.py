"""The pytest plugin of tests/ and features/ (the root conftest loads it): a live local stack in a
temporary home, started once per test session.

- `live_stack`: every service region (its meeting regions with one relay each);
- `meeting_stack`: the four meeting regions only, shared by the meeting and media tests and
  features. Only region sa (`MEDIA_REGION`) gets media relays (two, so it can fail over) and a PSTN
  gateway: the media scenarios run there, and the other regions' tests need no media.

With ROOMTRUST_DATABASE_URL set, the regions keep their data in PostgreSQL schemas named with a
prefix unique to this run (`schema_prefix`), dropped at the end; otherwise each region has its own
SQLite file in the temporary home.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from protocol.stack import Stack
from roomtrust.harness.stores import database_url
from roomtrust.stack import launcher
from services.common.db import drop_schema

MEDIA_REGION = "sa"
MEDIA_RELAYS = {MEDIA_REGION: 2}


@pytest.fixture(scope="session")
def schema_prefix() -> Iterator[str]:
    """A schema prefix unique to this test run; PostgreSQL schemas made under it are dropped."""
    prefix = f"t{secrets.token_hex(4)}_"
    previous = os.environ.get("ROOMTRUST_SCHEMA_PREFIX")
    os.environ["ROOMTRUST_SCHEMA_PREFIX"] = prefix
    yield prefix
    if previous is None:
        os.environ.pop("ROOMTRUST_SCHEMA_PREFIX", None)
    else:
        os.environ["ROOMTRUST_SCHEMA_PREFIX"] = previous
    url = database_url()
    if url:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": prefix + "%"},
            ).scalars()
            schemas = list(names)
        engine.dispose()
        for name in schemas:
            drop_schema(url, name)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory, schema_prefix: str) -> Iterator[Stack]:
    """The whole local stack, started once per test session and stopped at its end."""
    home = tmp_path_factory.mktemp("stack")
    stack = launcher.start(home)
    try:
        yield stack
    finally:
        launcher.stop(home)


@pytest.fixture(scope="session")
def meeting_stack(tmp_path_factory: pytest.TempPathFactory, schema_prefix: str) -> Iterator[Stack]:
    """The four meeting regions, with two relays and a PSTN gateway in region sa."""
    home = tmp_path_factory.mktemp("meeting-stack")
    stack = launcher.start(
        home,
        services=["meeting"],
        schema_prefix=schema_prefix,
        relays=MEDIA_RELAYS,
        pstn=[MEDIA_REGION],
    )
    try:
        yield stack
    finally:
        launcher.stop(home)
