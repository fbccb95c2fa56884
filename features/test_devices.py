"""Binds features/devices.feature."""

from pytest_bdd import scenarios

from features.steps.devices_steps import *  # noqa: F403

scenarios("devices.feature")
