"""Meeting users under load, with the real MeetingClient over HTTPS and the WSS signaling socket.

    MeetingModerator    logs in; then, again and again: creates a conference, locks it, announces
                        it, admits whoever knocks while it is open, mutes all, and ends it.
    MeetingParticipant  logs in; then picks a conference a moderator announced, joins it through the
                        lobby, says hello in the chat, and leaves.

Moderators and participants may run on different workers: announcements go through the master.
"""

from __future__ import annotations

import secrets
import time

import gevent
from locust import User, constant_throughput, task

from load.client import nodes
from load.client.sessions import MeetingSession


class MeetingModerator(User):
    wait_time = constant_throughput(0.1)

    def on_start(self) -> None:
        self.meeting = MeetingSession(self, "moderator")
        self.meeting.log_in()

    @task
    def meeting(self) -> None:
        m = self.meeting
        if not m.changes.wait_until(lambda: m.ready, 10):
            return
        password = f"pw-{secrets.token_hex(3)}"
        conference_id = m.create(f"Load {secrets.token_hex(2)}", password)
        if conference_id is None:
            return
        m.lock()
        entry = {"fleet": m.fleet, "conference_id": conference_id, "password": password}
        nodes.announce(self.environment, {**entry, "open": True, "opened_at": time.time()})
        gevent.sleep(nodes.hold_s())  # the lobby fills; the client admits every knock
        nodes.announce(self.environment, {**entry, "open": False})
        gevent.sleep(0.5)  # let the last knocks be admitted
        m.mute_all()
        m.end()

    def on_stop(self) -> None:
        self.meeting.close()


class MeetingParticipant(User):
    wait_time = constant_throughput(0.2)

    def on_start(self) -> None:
        self.meeting = MeetingSession(self, "participant")
        self.meeting.log_in()

    @task
    def meeting(self) -> None:
        m = self.meeting
        if not m.changes.wait_until(lambda: m.ready, 10):
            return
        entry = nodes.wait_for_conference(m.fleet, nodes.hold_s() * 0.6, timeout_s=3.0)
        if entry is None:
            return
        if m.join_through_lobby(entry["conference_id"], entry["password"], timeout=nodes.hold_s()):
            m.chat("hello from the load test")
            m.leave()

    def on_stop(self) -> None:
        self.meeting.close()
