"""Migration 0003 (firmware catalogue, downloads, rollouts, rollout journal) goes up, down and up
again on SQLite and, with ROOMTRUST_DATABASE_URL, on PostgreSQL; the store then matches the models."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from roomtrust.harness.stores import database_url
from services.common.db import make_engine, sqlite_url
from services.dm.main import MIGRATIONS
from services.dm.store.models import Base

NEW_TABLES = {"firmware_images", "firmware_downloads", "rollouts", "rollout_events"}


def alembic(engine: sa.Engine, *step: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, step[0])(cfg, step[1])


def test_migration_0003_goes_up_down_and_up_and_matches_the_models(
    tmp_path: Path, schema_prefix: str
) -> None:
    url = database_url()
    if url:
        engine = make_engine(url, f"{schema_prefix}dm_migr_{secrets.token_hex(3)}")
    else:
        engine = make_engine(sqlite_url(tmp_path / "dm.sqlite3"))
    try:
        alembic(engine, "upgrade", "head")
        assert set(sa.inspect(engine).get_table_names()) >= NEW_TABLES
        alembic(engine, "downgrade", "0002")
        assert not NEW_TABLES & set(sa.inspect(engine).get_table_names())
        alembic(engine, "upgrade", "head")
        with engine.connect() as conn:
            head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
            assert MigrationContext.configure(conn).get_current_revision() == head
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()
