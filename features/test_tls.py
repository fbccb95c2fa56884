"""Binds features/tls.feature."""

from pytest_bdd import scenarios

from features.steps.tls_steps import *  # noqa: F403

scenarios("tls.feature")
