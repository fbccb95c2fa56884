"""What the replicas of a replicated meeting region agree on, in PostgreSQL (docs/meeting-replicas.md).

- `relays`: each relay writes its own row (address, control URL, capacity) and beats it every
  second; a row whose beat is older than `RELAY_STALE_SECONDS`, or marked lost, is not a live relay.
  Marking a relay lost is one conditional update, so exactly one replica wins it and replaces it.
- `relay_placements` and `relay_members`: the relay of each live conference (one row, so every
  replica agrees) and who is admitted on it (whom a move carries along).
- `conference_owners`: the replica that runs a live conference's session, with a lease it renews,
  and the session's snapshot (never the chat) that a replica taking over rebuilds it from.

Time is the database's (`now()`), so the replicas' clocks need not agree. Each call is one
transaction, run in a worker thread. PostgreSQL only: the embedded (SQLite) region has one process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.common.db import transaction

T = TypeVar("T")
RELAY_STALE_SECONDS = 3.0
LEASE_SECONDS = 1.0


@dataclass(frozen=True)
class RelayInfo:
    name: str
    media_address: str
    control_url: str
    ca_file: str
    capacity: int
    pid: int


@dataclass(frozen=True)
class Owner:
    replica_id: str
    lease_valid: bool


@dataclass(frozen=True)
class Moved:
    conference_id: str
    target: str
    participants: tuple[str, ...]


class ReplicaStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _tx(self, fn: Callable[[Session], T]) -> T:
        with transaction(self.sessions) as session:
            return fn(session)

    async def _run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._tx, fn)

    # -- relays ------------------------------------------------------------------------------

    def register_relay(self, relay: RelayInfo) -> None:
        """Called by the relay process at start (and by each beat that finds no row)."""
        self._tx(
            lambda s: s.execute(
                text(
                    "INSERT INTO relays (name, media_address, control_url, ca_file, capacity, pid,"
                    " heartbeat_at, lost) VALUES (:name, :media, :control, :ca, :cap, :pid, now(),"
                    " false) ON CONFLICT (name) DO UPDATE SET heartbeat_at = now()"
                ),
                {
                    "name": relay.name,
                    "media": relay.media_address,
                    "control": relay.control_url,
                    "ca": relay.ca_file,
                    "cap": relay.capacity,
                    "pid": relay.pid,
                },
            )
        )

    def beat_relay(self, name: str) -> bool:
        """Refresh the relay's beat; False once it has been declared lost (it must then end)."""

        def beat(s: Session) -> bool:
            row = s.execute(
                text("UPDATE relays SET heartbeat_at = now() WHERE name = :name RETURNING lost"),
                {"name": name},
            ).first()
            return row is not None and not row[0]

        return self._tx(beat)

    async def live_relays(self) -> list[RelayInfo]:
        def read(s: Session) -> list[RelayInfo]:
            rows = s.execute(
                text(
                    "SELECT name, media_address, control_url, ca_file, capacity, pid FROM relays"
                    " WHERE NOT lost AND heartbeat_at > now() - make_interval(secs => :stale)"
                    " ORDER BY name"
                ),
                {"stale": RELAY_STALE_SECONDS},
            ).all()
            return [RelayInfo(*row) for row in rows]

        return await self._run(read)

    async def mark_lost(self, name: str) -> bool:
        """Declare a relay lost; True for the one caller that did it (it moves and replaces)."""

        def mark(s: Session) -> bool:
            row = s.execute(
                text(
                    "UPDATE relays SET lost = true WHERE name = :name AND NOT lost RETURNING name"
                ),
                {"name": name},
            ).first()
            return row is not None

        return await self._run(mark)

    async def relay_count(self) -> tuple[int, int]:
        """(relays ever registered, relays declared lost)."""

        def count(s: Session) -> tuple[int, int]:
            row = s.execute(text("SELECT count(*), count(*) FILTER (WHERE lost) FROM relays")).one()
            return int(row[0]), int(row[1])

        return await self._run(count)

    # -- placements ----------------------------------------------------------------------------

    async def place(self, conference_id: str, live: list[str]) -> str | None:
        """The conference's relay: its row if that relay is live, else the least loaded live one
        (written, so the next caller on any replica reads the same)."""

        def place(s: Session) -> str | None:
            _lock(s, f"placement:{conference_id}")
            row = s.execute(
                text("SELECT relay_name FROM relay_placements WHERE conference_id = :c"),
                {"c": conference_id},
            ).first()
            if row is not None and row[0] in live:
                return str(row[0])
            target = _least_loaded(s, live)
            if target is None:
                return None
            s.execute(
                text(
                    "INSERT INTO relay_placements (conference_id, relay_name, moves)"
                    " VALUES (:c, :r, 0) ON CONFLICT (conference_id) DO UPDATE"
                    " SET relay_name = :r, moves = relay_placements.moves + 1"
                ),
                {"c": conference_id, "r": target},
            )
            return target

        return await self._run(place)

    async def placement(self, conference_id: str) -> tuple[str, int] | None:
        """(relay, how many times the conference moved), or None."""

        def read(s: Session) -> tuple[str, int] | None:
            row = s.execute(
                text("SELECT relay_name, moves FROM relay_placements WHERE conference_id = :c"),
                {"c": conference_id},
            ).first()
            return None if row is None else (str(row[0]), int(row[1]))

        return await self._run(read)

    async def move_off(self, lost: str, live: list[str]) -> list[Moved]:
        """Plan every conference on a lost relay onto the least loaded live ones."""

        def move(s: Session) -> list[Moved]:
            rows = s.execute(
                text(
                    "SELECT conference_id FROM relay_placements WHERE relay_name = :r"
                    " ORDER BY conference_id FOR UPDATE"
                ),
                {"r": lost},
            ).all()
            moved = []
            for (conference_id,) in rows:
                target = _least_loaded(s, [r for r in live if r != lost])
                if target is None:
                    continue
                s.execute(
                    text(
                        "UPDATE relay_placements SET relay_name = :t, moves = moves + 1"
                        " WHERE conference_id = :c"
                    ),
                    {"t": target, "c": conference_id},
                )
                members = s.execute(
                    text(
                        "SELECT participant_id FROM relay_members WHERE conference_id = :c"
                        " ORDER BY participant_id"
                    ),
                    {"c": conference_id},
                ).all()
                moved.append(Moved(str(conference_id), target, tuple(str(m[0]) for m in members)))
            return moved

        return await self._run(move)

    async def joined(self, conference_id: str, participant_id: str) -> None:
        await self._run(
            lambda s: s.execute(
                text(
                    "INSERT INTO relay_members (participant_id, conference_id) VALUES (:p, :c)"
                    " ON CONFLICT (participant_id) DO UPDATE SET conference_id = :c"
                ),
                {"p": participant_id, "c": conference_id},
            )
        )

    async def left(self, conference_id: str, participant_id: str) -> tuple[bool, list[str]]:
        """(whether it was a member, who remains); the last one out frees the placement."""

        def leave(s: Session) -> tuple[bool, list[str]]:
            was = s.execute(
                text(
                    "DELETE FROM relay_members WHERE participant_id = :p AND conference_id = :c"
                    " RETURNING participant_id"
                ),
                {"p": participant_id, "c": conference_id},
            ).first()
            rest = [
                str(r[0])
                for r in s.execute(
                    text("SELECT participant_id FROM relay_members WHERE conference_id = :c"),
                    {"c": conference_id},
                ).all()
            ]
            if not rest:
                s.execute(
                    text("DELETE FROM relay_placements WHERE conference_id = :c"),
                    {"c": conference_id},
                )
            return was is not None, sorted(rest)

        return await self._run(leave)

    # -- conference owners -----------------------------------------------------------------------

    async def owner(self, conference_id: str) -> Owner | None:
        def read(s: Session) -> Owner | None:
            row = s.execute(
                text(
                    "SELECT replica_id, lease_until > now() FROM conference_owners"
                    " WHERE conference_id = :c"
                ),
                {"c": conference_id},
            ).first()
            return None if row is None else Owner(str(row[0]), bool(row[1]))

        return await self._run(read)

    async def claim(self, conference_id: str, replica_id: str) -> Owner:
        """Become the owner of a conference that has none; the owner it has otherwise."""

        def claim(s: Session) -> Owner:
            s.execute(
                text(
                    "INSERT INTO conference_owners (conference_id, replica_id, lease_until,"
                    " snapshot, resume_tokens) VALUES (:c, :r, now() + make_interval(secs => :l),"
                    " 'null', '{}') ON CONFLICT (conference_id) DO NOTHING"
                ),
                {"c": conference_id, "r": replica_id, "l": LEASE_SECONDS},
            )
            row = s.execute(
                text(
                    "SELECT replica_id, lease_until > now() FROM conference_owners"
                    " WHERE conference_id = :c"
                ),
                {"c": conference_id},
            ).one()
            return Owner(str(row[0]), bool(row[1]))

        return await self._run(claim)

    async def take_over(
        self, conference_id: str, replica_id: str
    ) -> tuple[dict[str, Any], dict[str, str]] | None:
        """Own a conference whose owner's lease ran out; returns its snapshot ({} when none was
        written yet) and its participants' resume-token digests; None when not taken."""

        def take(s: Session) -> tuple[dict[str, Any], dict[str, str]] | None:
            row = s.execute(
                text(
                    "UPDATE conference_owners SET replica_id = :r,"
                    " lease_until = now() + make_interval(secs => :l)"
                    " WHERE conference_id = :c AND lease_until < now()"
                    " RETURNING snapshot, resume_tokens"
                ),
                {"c": conference_id, "r": replica_id, "l": LEASE_SECONDS},
            ).first()
            if row is None:
                return None
            snapshot, tokens = (json.loads(v) if isinstance(v, str) else v for v in row)
            return (
                snapshot if isinstance(snapshot, dict) else {},
                {str(k): str(v) for k, v in (tokens or {}).items()},
            )

        return await self._run(take)

    async def renew(self, replica_id: str, conference_ids: list[str]) -> list[str]:
        """Extend the leases this replica holds; returns the conferences it still owns."""

        def renew(s: Session) -> list[str]:
            rows = s.execute(
                text(
                    "UPDATE conference_owners SET lease_until = now() + make_interval(secs => :l)"
                    " WHERE replica_id = :r AND conference_id = ANY(:cs) RETURNING conference_id"
                ),
                {"r": replica_id, "cs": conference_ids, "l": LEASE_SECONDS},
            ).all()
            return [str(r[0]) for r in rows]

        return await self._run(renew) if conference_ids else []

    async def save(
        self,
        conference_id: str,
        replica_id: str,
        snapshot: dict[str, Any],
        resume_tokens: dict[str, str],
    ) -> bool:
        """Write the session's snapshot and the digests of its resume tokens (never a token);
        False when this replica no longer owns the conference (nothing written)."""

        def save(s: Session) -> bool:
            row = s.execute(
                text(
                    "UPDATE conference_owners SET snapshot = CAST(:snap AS json),"
                    " resume_tokens = CAST(:tokens AS json)"
                    " WHERE conference_id = :c AND replica_id = :r RETURNING conference_id"
                ),
                {
                    "c": conference_id,
                    "r": replica_id,
                    "snap": json.dumps(snapshot),
                    "tokens": json.dumps(resume_tokens),
                },
            ).first()
            return row is not None

        return await self._run(save)

    async def release(self, conference_id: str, replica_id: str) -> None:
        await self._run(
            lambda s: s.execute(
                text("DELETE FROM conference_owners WHERE conference_id = :c AND replica_id = :r"),
                {"c": conference_id, "r": replica_id},
            )
        )

    async def live_conferences(self) -> dict[str, str]:
        """Every conference an owner runs now (lease valid), with its enterprise."""

        def read(s: Session) -> dict[str, str]:
            rows = s.execute(
                text(
                    "SELECT conference_id, snapshot->>'enterprise_id' FROM conference_owners"
                    " WHERE lease_until > now()"
                )
            ).all()
            return {str(r[0]): str(r[1] or "") for r in rows}

        return await self._run(read)

    async def expired(self, conference_ids: list[str]) -> list[str]:
        """Of these conferences, those whose owner's lease has run out."""

        def read(s: Session) -> list[str]:
            rows = s.execute(
                text(
                    "SELECT conference_id FROM conference_owners"
                    " WHERE conference_id = ANY(:cs) AND lease_until < now()"
                ),
                {"cs": conference_ids},
            ).all()
            return [str(r[0]) for r in rows]

        return await self._run(read) if conference_ids else []


def _lock(session: Session, name: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})


def _least_loaded(session: Session, live: list[str]) -> str | None:
    if not live:
        return None
    rows = session.execute(
        text(
            "SELECT relay_name, count(*) FROM relay_placements"
            " WHERE relay_name = ANY(:live) GROUP BY relay_name"
        ),
        {"live": live},
    ).all()
    load = {str(r[0]): int(r[1]) for r in rows}
    return min(sorted(live), key=lambda name: load.get(name, 0))
