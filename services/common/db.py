"""SQLAlchemy 2 engines and sessions: SQLite by default, PostgreSQL from ROOMTRUST_DATABASE_URL.

Every service region keeps its data apart. On SQLite that is one file per region; on PostgreSQL it
is one schema per region in the given database (the engine pins `search_path` to it), so a single
PostgreSQL server hosts a whole local stack and each test run can use its own schemas.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk before the service answers,
so no acknowledged write is lost when the process is killed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import DateTime, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

# Constraint names every store uses, so Alembic migrations name them the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Timestamp = DateTime(timezone=True)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_engine(url: str, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`; on PostgreSQL `schema` is created if needed and made the search path."""
    if is_postgres(url):
        if schema is None:
            raise ValueError("a PostgreSQL store needs a schema name")
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"bad schema name {schema!r}")
        bootstrap = create_engine(url, isolation_level="AUTOCOMMIT")
        with bootstrap.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        bootstrap.dispose()
        return create_engine(
            url,
            connect_args={"options": f"-csearch_path={schema}"},
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            **kwargs,
        )
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def drop_schema(url: str, schema: str) -> None:
    """Remove a PostgreSQL schema and everything in it (test clean-up)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def migrate(engine: Engine, script_location: Path) -> None:
    """Bring the store up to the newest Alembic revision of the service."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def store_location(
    database_url: str | None, home: Path, service: str, region: str, prefix: str = ""
) -> tuple[str, str | None]:
    """Where a service region keeps its data: (url, schema)."""
    if database_url and is_postgres(database_url):
        return database_url, f"{prefix}{service}_{region}"
    return sqlite_url(home / service / region / "store.sqlite3"), None
