"""Recording and live-streaming rules of a live conference, and the notices that tell everyone
(MT-16, MT-17).

Anyone whose role may record starts a recording where the administrator enabled recording; only
the recorder or a moderator stops it. Only the conference's creator live streams, where the
administrator enabled it and its role allows it. Each start and stop is a notice to everyone
admitted, and a participant admitted later is told what is going on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from protocol import signaling as wire
from protocol.signaling import NoticeKind
from services.common.errors import Forbidden, Invalid
from services.meeting.domain import permissions as perms
from services.meeting.domain.lobby import Participant


@dataclass(frozen=True)
class Recording:
    recording_id: str
    recorder_id: str  # the account that started it
    notice: wire.Notice  # what a participant admitted later is told


def notice(
    kind: NoticeKind,
    by: Participant,
    text: str,
    at: dt.datetime,
    recording_id: str | None = None,
) -> wire.Notice:
    return wire.Notice(kind, by.display_name, by.account_id, text, at.isoformat(), recording_id)


def start_recording(
    current: Recording | None,
    by: Participant,
    recording_id: str,
    permissions: frozenset[str],
    recording_enabled: bool,
    at: dt.datetime,
) -> Recording:
    if current is not None:
        raise Invalid("the conference is already being recorded", field="action")
    if not recording_enabled:
        raise Forbidden("the administrator has not enabled recording", field="action")
    perms.require(permissions, perms.RECORD)
    text = f"This call is being recorded by {by.display_name}"
    started = notice(NoticeKind.RECORDING_STARTED, by, text, at, recording_id)
    return Recording(recording_id, by.account_id, started)


def stop_recording(current: Recording | None, by: Participant, at: dt.datetime) -> wire.Notice:
    """The notice that the recording stopped (the caller forgets `current`)."""
    if current is None:
        raise Invalid("the conference is not being recorded", field="action")
    if by.account_id != current.recorder_id and not by.moderator:
        raise Forbidden("only the recorder or a moderator stops the recording", field="action")
    text = f"{by.display_name} stopped the recording"
    return notice(NoticeKind.RECORDING_STOPPED, by, text, at, current.recording_id)


def may_stream(
    by: Participant, owner_id: str, permissions: frozenset[str], streaming_enabled: bool
) -> None:
    if by.account_id != owner_id:
        raise Forbidden("only the conference's creator live streams it", field="action")
    if not streaming_enabled:
        raise Forbidden("the administrator has not enabled live streaming", field="action")
    perms.require(permissions, perms.LIVE_STREAM)


def streaming_started(by: Participant, at: dt.datetime) -> wire.Notice:
    text = f"This call is being live streamed by {by.display_name}"
    return notice(NoticeKind.STREAMING_STARTED, by, text, at)


def streaming_stopped(by: Participant, at: dt.datetime) -> wire.Notice:
    return notice(NoticeKind.STREAMING_STOPPED, by, "Live streaming stopped", at)
