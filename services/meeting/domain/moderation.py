"""In-conference moderation (MT-09), sans-IO on top of the lobby's roster.

Moderators with the matching permission mute or remove one participant or all of them; every
participant with `media.self_disable` turns their own audio or video off and on. Each function
checks its rule and returns the lobby's actions; nothing is sent or stored here.
"""

from __future__ import annotations

from protocol import signaling as wire
from services.common.errors import Forbidden, Invalid
from services.meeting.domain import permissions as perms
from services.meeting.domain.lobby import Action, Lobby, Send

ALL = wire.ALL


def _moderator_with(lobby: Lobby, actor_id: str, permission: str) -> str:
    actor = lobby.moderator(actor_id)
    if permission not in actor.permissions:
        raise Forbidden(f"your role lacks the permission {permission!r}", field=None)
    return actor.display_name


def _targets(lobby: Lobby, actor_id: str, target: str) -> list[str]:
    if target == ALL:
        return [pid for pid in lobby.participants if pid != actor_id]
    if target not in lobby.participants:
        raise Invalid("no such participant in the conference", field="target")
    return [target]


def mute(lobby: Lobby, actor_id: str, target: str) -> list[Action]:
    by = _moderator_with(lobby, actor_id, perms.CONFERENCE_MUTE)
    actions: list[Action] = []
    for pid in _targets(lobby, actor_id, target):
        lobby.participants[pid].audio = False
        actions.append(Send(pid, wire.Muted(by)))
    return actions + lobby.roster_updates()


def remove(lobby: Lobby, actor_id: str, target: str) -> list[Action]:
    by = _moderator_with(lobby, actor_id, perms.CONFERENCE_PARTICIPANTS)
    if target == actor_id:
        raise Invalid("leave instead of removing yourself", field="target")
    actions: list[Action] = []
    for pid in _targets(lobby, actor_id, target):
        actions += lobby.remove(pid, by)
    return actions


def set_own_media(
    lobby: Lobby, participant_id: str, audio: bool | None, video: bool | None
) -> list[Action]:
    person = lobby.participants.get(participant_id)
    if person is None:
        raise Forbidden("join the conference first", field=None)
    if perms.SELF_MEDIA not in person.permissions:
        raise Forbidden(f"your role lacks the permission {perms.SELF_MEDIA!r}", field=None)
    if audio is None and video is None:
        raise Invalid("give audio or video", field="audio")
    if audio is not None:
        person.audio = audio
    if video is not None:
        person.video = video
    state = wire.MediaState(participant_id, person.audio, person.video)
    return [*lobby.broadcast(state), *lobby.roster_updates()]
