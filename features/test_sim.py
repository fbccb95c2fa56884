"""Binds features/sim.feature."""

from pytest_bdd import scenarios

from features.steps.sim_steps import *  # noqa: F403

scenarios("sim.feature")
