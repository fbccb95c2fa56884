"""Binds features/media.feature."""

from pytest_bdd import scenarios

from features.steps.media_steps import *  # noqa: F403
from features.steps.recording_steps import *  # noqa: F403

scenarios("media.feature")
