"""Conference chat (MT-17, MT-18): held in memory for the live conference only.

Nothing here touches a database, a log or a file. `ChatRoom.close()` drops every message when the
conference ends; the object is then discarded with the conference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from protocol import signaling as wire
from services.common.errors import Forbidden, Invalid
from services.meeting.domain import permissions as perms
from services.meeting.domain.lobby import Action, Lobby, Send

MAX_TEXT = 2000
HISTORY = 200


@dataclass
class ChatRoom:
    messages: list[wire.ChatMessage] = field(default_factory=list)
    closed: bool = False

    def post(
        self,
        lobby: Lobby,
        sender_id: str,
        text: object,
        to: object,
        *,
        chat_enabled: bool,
        now: dt.datetime,
    ) -> list[Action]:
        if self.closed:
            raise Forbidden("the conference has ended", field=None)
        sender = lobby.participants.get(sender_id)
        if sender is None:
            raise Forbidden("join the conference before chatting", field=None)
        if not chat_enabled:
            raise Forbidden("the administrator has disabled chat", field="text")
        if perms.CHAT not in sender.permissions:
            raise Forbidden(f"your role lacks the permission {perms.CHAT!r}", field=None)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise Invalid(f"text must be 1 to {MAX_TEXT} characters", field="text")
        if to is not None and (not isinstance(to, str) or to not in lobby.participants):
            raise Invalid("no such participant in the conference", field="to")
        message = wire.ChatMessage(
            sender_id, sender.display_name, text, now.isoformat(), to is not None
        )
        if isinstance(to, str):
            return [Send(pid, message) for pid in dict.fromkeys((sender_id, to))]
        self.messages.append(message)
        del self.messages[:-HISTORY]
        return lobby.broadcast(message)

    def history_for(self, participant_id: str) -> list[Send]:
        """Earlier public messages of this conference, for a participant just admitted."""
        return [Send(participant_id, m) for m in self.messages]

    def close(self) -> None:
        self.messages.clear()
        self.closed = True
