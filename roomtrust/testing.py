"""Pytest fixtures shared by tests/ and features/: a live local stack in a temporary home.

The stack runs every service region as a real process. With ROOMTRUST_DATABASE_URL set, the
regions keep their data in PostgreSQL schemas named with a prefix unique to this run, dropped at the
end; otherwise each region has its own SQLite file in the temporary home.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local import stack as local_stack
from services.common.db import drop_schema, is_postgres


def database_url() -> str | None:
    url = os.environ.get("ROOMTRUST_DATABASE_URL")
    return url if url and is_postgres(url) else None


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
def live_stack(
    tmp_path_factory: pytest.TempPathFactory, schema_prefix: str
) -> Iterator[dict[str, Any]]:
    """The whole local stack, started once per test session and stopped at its end."""
    home = tmp_path_factory.mktemp("stack")
    stack = local_stack.start(home)
    try:
        yield stack
    finally:
        local_stack.stop(home)


def region_endpoint(stack: dict[str, Any], service: str, region: str) -> tuple[str, Path]:
    info = stack["services"][service][region]
    return info["url"], Path(info["ca_file"])


def region_engine(stack: dict[str, Any], service: str, region: str) -> Any:
    """A read-side engine on a running region's own store (for tests that audit rows)."""
    from services.common.db import make_engine, store_location

    url, schema = store_location(
        database_url(),
        Path(stack["home"]),
        service,
        region,
        stack.get("schema_prefix", ""),
    )
    return make_engine(url, schema)


def table_counts(engine: Any) -> dict[str, int]:
    """Row count of every table in a store (alembic's own bookkeeping left out)."""
    import sqlalchemy as sa

    names = [n for n in sa.inspect(engine).get_table_names() if n != "alembic_version"]
    if not names:
        raise AssertionError("the store has no tables: nothing to audit")
    with engine.connect() as conn:
        return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
