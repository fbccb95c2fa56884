"""The stores behind a running stack, read side only: for tests and steps that audit rows."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from typing import Any

from protocol.stack import Stack
from services.common.db import is_postgres, make_engine, store_location


def database_url() -> str | None:
    """The PostgreSQL URL the run's regions use (ROOMTRUST_DATABASE_URL), or None for SQLite."""
    url = os.environ.get("ROOMTRUST_DATABASE_URL")
    return url if url and is_postgres(url) else None


def region_engine(stack: Stack, service: str, region: str) -> Any:
    """A read-side engine on a running region's own store (on the stack's PostgreSQL database
    when its stack.json names one, else on ROOMTRUST_DATABASE_URL's, else its SQLite file)."""
    url, schema = store_location(
        stack.database_url or database_url(), stack.home, service, region, stack.schema_prefix
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


def stored_places(engine: Any) -> list[tuple[str, str]]:
    """Every row of every table (alembic's bookkeeping left out) as (where, lower-cased text)."""
    import sqlalchemy as sa

    places: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            if table == "alembic_version":
                continue
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                places.append((f"table {table}", " ".join(str(v) for v in row).lower()))
    return places


def max_telemetry_id(engine: Any) -> int:
    """The id of a DM store's newest telemetry row (0 when there is none)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM telemetry")).scalar_one())


def telemetry_since(engine: Any, mark: int, devices: Collection[str]) -> list[dict[str, Any]]:
    """The field sets of the telemetry rows of a DM store stored after row `mark` for these
    devices."""
    import sqlalchemy as sa

    query = sa.text("SELECT device_id, fields FROM telemetry WHERE id > :mark")
    with engine.connect() as conn:
        rows = conn.execute(query, {"mark": mark}).all()
    reports = []
    for device_id, fields in rows:
        if str(device_id) in devices:
            reports.append(json.loads(fields) if isinstance(fields, str) else dict(fields))
    return reports
