"""Binds features/interop.feature (its Background and enterprise steps are the meeting steps)."""

from pytest_bdd import scenarios

from features.steps.interop_steps import *  # noqa: F403
from features.steps.meeting_steps import *  # noqa: F403

scenarios("interop.feature")
