"""The body of every service's Alembic env.py: run migrations on the connection handed over by
`services.common.db.migrate`, or on a URL from the Alembic config when run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool


def run(target_metadata: MetaData) -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
