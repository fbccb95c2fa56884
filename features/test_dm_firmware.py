"""Binds features/dm_firmware.feature."""

from pytest_bdd import scenarios

from features.steps.dm_firmware_steps import *  # noqa: F403
from features.steps.dm_steps import *  # noqa: F403

scenarios("dm_firmware.feature")
