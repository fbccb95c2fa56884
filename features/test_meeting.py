"""Binds features/meeting.feature."""

from pytest_bdd import scenarios

from features.steps.meeting_steps import *  # noqa: F403

scenarios("meeting.feature")
