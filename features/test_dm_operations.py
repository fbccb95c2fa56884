"""Binds features/dm_operations.feature."""

from pytest_bdd import scenarios

from features.steps.dm_operations_steps import *  # noqa: F403
from features.steps.dm_steps import *  # noqa: F403

scenarios("dm_operations.feature")
