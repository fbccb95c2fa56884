"""Binds features/under_load.feature (the steps of dm.feature and tls.feature, reused)."""

from pytest_bdd import scenarios

from features.steps.dm_steps import *  # noqa: F403
from features.steps.tls_steps import *  # noqa: F403
from features.steps.under_load_steps import *  # noqa: F403

scenarios("under_load.feature")
