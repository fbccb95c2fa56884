"""Evidence for MT-02, MT-16 and MT-18: search a meeting region's database, logs and storage for a
string, and list where recording files exist. Used by the tests, the features and the compliance run.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from services.common.db import is_postgres, make_engine, store_location


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def files_containing(root: Path, needle: str) -> list[Path]:
    raw = needle.encode()
    return [path for path in _files_under(root) if raw in path.read_bytes()]


def database_contains(
    home: Path, region: str, needle: str, schema_prefix: str = "", database_url: str | None = None
) -> list[str]:
    """Tables (PostgreSQL) or store files (SQLite, with WAL) of the region that hold the string;
    the database is `database_url`, else ROOMTRUST_DATABASE_URL's."""
    url = database_url or os.environ.get("ROOMTRUST_DATABASE_URL")
    if url and is_postgres(url):
        db_url, schema = store_location(url, home, "meeting", region, schema_prefix)
        engine = make_engine(db_url, schema)
        hits = []
        try:
            with engine.connect() as conn:
                for table in sa.inspect(conn).get_table_names():
                    found = conn.execute(
                        sa.text(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE :n'),
                        {"n": f"%{needle}%"},
                    ).scalar_one()
                    if found:
                        hits.append(table)
        finally:
            engine.dispose()
        return hits
    directory = home / "meeting" / region
    return [str(p) for p in directory.glob("store.sqlite3*") if needle.encode() in p.read_bytes()]


def trace_of(
    home: Path, region: str, needle: str, schema_prefix: str = "", database_url: str | None = None
) -> dict[str, list[str]]:
    """Every place of a region where the string appears: database, logs, storage directory."""
    storage = home / "meeting" / region
    return {
        "database": database_contains(home, region, needle, schema_prefix, database_url),
        "logs": [str(p) for p in files_containing(home / "logs", needle)],
        "storage": [str(p) for p in files_containing(storage, needle)],
    }


def recording_files(home: Path) -> dict[str, list[str]]:
    """Recording files per meeting region directory of a stack home."""
    root = home / "meeting"
    if not root.exists():
        return {}
    return {
        region.name: sorted(p.name for p in (region / "recordings").glob("*.rec"))
        for region in sorted(root.iterdir())
        if region.is_dir()
    }
