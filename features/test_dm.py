"""Binds features/dm.feature."""

from pytest_bdd import scenarios

from features.steps.dm_steps import *  # noqa: F403

scenarios("dm.feature")
