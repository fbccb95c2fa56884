"""SQLAlchemy 2 engines and sessions: SQLite by default, PostgreSQL from ROOMTRUST_DATABASE_URL.

Every service region keeps its data apart. On SQLite that is one file per region; on PostgreSQL it
is one schema per region in the given database (the engine pins `search_path` to it), so a single
PostgreSQL server hosts a whole local stack and each test run can use its own schemas.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk before the service answers,
so no acknowledged write is lost when the process is killed.
"""

from __future__ import annotations

import hashlib
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


def make_engine(url: str, schema: str | None = None, pool_size: int = 10, **kwargs: Any) -> Engine:
    """An engine for `url`; on PostgreSQL `schema` is created if needed and made the search path,
    and the pool keeps `pool_size` connections (and opens up to twice as many more under load)."""
    if is_postgres(url):
        if schema is None:
            raise ValueError("a PostgreSQL store needs a schema name")
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"bad schema name {schema!r}")
        bootstrap = create_engine(url)
        with bootstrap.begin() as conn:  # replicas starting at once: one creates, none fails
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(schema)})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        bootstrap.dispose()
        return create_engine(
            url,
            connect_args={"options": f"-csearch_path={schema}"},
            pool_size=pool_size,
            max_overflow=2 * pool_size,
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


TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a deadlock or serialization failure: the transaction
    was rolled back and may simply be run again."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in TRANSIENT_SQLSTATES:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


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


def _lock_key(schema: str) -> int:
    """The advisory lock key that serializes migrating a schema: a signed 64-bit number."""
    digest = hashlib.sha256(f"roomtrust-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(engine: Engine, script_location: Path) -> None:
    """Bring the store up to the newest Alembic revision of the service.

    On PostgreSQL the migration runs under a transaction-scoped advisory lock of the schema: the
    replicas of a region start at once, one migrates while the others wait, and each of those
    then finds the store at head and has nothing to do."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(schema)})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def store_location(
    database_url: str | None, home: Path, service: str, region: str, prefix: str = ""
) -> tuple[str, str | None]:
    """Where a service region keeps its data: (url, schema)."""
    if database_url and is_postgres(database_url):
        return database_url, f"{prefix}{service}_{region}"
    return sqlite_url(home / service / region / "store.sqlite3"), None
