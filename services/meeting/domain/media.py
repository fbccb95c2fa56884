"""Which relay carries which conference's media, sans-IO (MT-03, MT-06).

All participants of a conference sit on one relay, since a relay forwards only among its own
participants. A new conference goes to the live relay with the fewest conferences. When a relay is
lost, every conference on it is planned onto another live relay with the same rule and the same
participants (`Move`); when no relay is live, the conference waits (`orphans`) until one comes up.
The region's relay pool (services/meeting/media/pool.py) drives this object: it reports relays up and
down and participants in and out, and carries out the moves over the relays' control APIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Move:
    """Move `participants` of `conference_id` from a lost relay to `target` (None: no relay yet)."""

    conference_id: str
    lost: str
    target: str | None
    participants: tuple[str, ...]


@dataclass
class RelayDirectory:
    live: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    hosts: dict[str, str] = field(default_factory=dict)  # conference -> relay
    members: dict[str, set[str]] = field(default_factory=dict)  # conference -> participants

    # -- relays ------------------------------------------------------------------------------

    def relay_up(self, name: str) -> list[Move]:
        """A relay answers its heartbeat. Returns the moves of conferences that had no relay."""
        if name in self.lost:
            return []  # a lost relay never comes back under the same name
        self.live.add(name)
        moves = []
        for conference_id in self.orphans():
            self.hosts[conference_id] = name
            moves.append(
                Move(conference_id, "", name, tuple(sorted(self.members.get(conference_id, ()))))
            )
        return moves

    def relay_down(self, name: str) -> list[Move]:
        """A relay is gone: plan every conference it carried onto another live relay."""
        if name in self.lost:
            return []
        self.live.discard(name)
        self.lost.add(name)
        moves = []
        for conference_id in sorted(c for c, r in self.hosts.items() if r == name):
            target = self._least_loaded()
            if target is None:
                del self.hosts[conference_id]
            else:
                self.hosts[conference_id] = target
            members = tuple(sorted(self.members.get(conference_id, ())))
            moves.append(Move(conference_id, name, target, members))
        return moves

    def orphans(self) -> list[str]:
        """Conferences with participants but no live relay."""
        return sorted(c for c, m in self.members.items() if m and c not in self.hosts)

    def load(self, name: str) -> int:
        return sum(1 for r in self.hosts.values() if r == name)

    def _least_loaded(self) -> str | None:
        if not self.live:
            return None
        return min(sorted(self.live), key=self.load)

    # -- conferences -------------------------------------------------------------------------

    def place(self, conference_id: str) -> str | None:
        """The relay of a conference, choosing one if it has none; None while no relay is live."""
        host = self.hosts.get(conference_id)
        if host is not None and host in self.live:
            return host
        target = self._least_loaded()
        if target is not None:
            self.hosts[conference_id] = target
        return target

    def host(self, conference_id: str) -> str | None:
        return self.hosts.get(conference_id)

    def joined(self, conference_id: str, participant_id: str) -> None:
        self.members.setdefault(conference_id, set()).add(participant_id)

    def left(self, conference_id: str, participant_id: str) -> list[str]:
        """Take a participant out; returns who is left. The last one out frees the relay."""
        members = self.members.get(conference_id, set())
        members.discard(participant_id)
        if not members:
            self.members.pop(conference_id, None)
            self.hosts.pop(conference_id, None)
        return sorted(members)

    def participants(self, conference_id: str) -> list[str]:
        return sorted(self.members.get(conference_id, ()))

    def abandon(self, conference_id: str) -> None:
        """Forget the relay chosen for a conference that nobody joined after all."""
        if not self.members.get(conference_id):
            self.members.pop(conference_id, None)
            self.hosts.pop(conference_id, None)
