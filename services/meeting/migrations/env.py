"""Alembic environment of the meeting store."""

from services.common.migrations_env import run
from services.meeting.store.models import Base

run(Base.metadata)
