"""Alembic environment of the DM store."""

from services.common.migrations_env import run
from services.dm.store.models import Base

run(Base.metadata)
