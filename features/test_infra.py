"""Binds features/infra.feature."""

from pytest_bdd import scenarios

from features.steps.infra_steps import *  # noqa: F403

scenarios("infra.feature")
