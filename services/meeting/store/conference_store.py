"""The persistence driver of live conferences: what signaling reads and writes in the database.

Signaling carries out the conference session's persistence actions through this class (the lock,
the CDR call and legs, recordings, the end of a one-off conference) and reads here what the session
is told (who a socket is, whether a conference may be joined, the enterprise's switches). Each call
is one transaction, run in a worker thread so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from services.common.clock import Clock
from services.common.db import transaction
from services.meeting.domain import accounts, cdr, conferences, recording, segments
from services.meeting.domain.accounts import Identity
from services.meeting.store.models import Conference, Enterprise

T = TypeVar("T")


@dataclass(frozen=True)
class JoinableConference:
    """What a live session needs of the conference row it is opened for."""

    conference_id: str
    enterprise_id: str
    owner_id: str
    locked: bool
    escalation: bool


@dataclass(frozen=True)
class EnterprisePolicy:
    """The administrator's switches that the in-call rules obey (MT-16, MT-17)."""

    chat_enabled: bool
    recording_enabled: bool
    live_streaming_enabled: bool


class ConferenceStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: recording.RecordingStorage,
        region: str,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.region = region
        self.clock = clock

    def _in_tx(self, fn: Callable[[Session], T]) -> T:
        with transaction(self.sessions) as session:
            return fn(session)

    async def _run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._in_tx, fn)

    # -- reads ----------------------------------------------------------------------------------

    async def authenticate(self, token: str | None, cert: str | None) -> Identity:
        now = self.clock.now()
        return await self._run(lambda s: accounts.authenticate(s, token, cert, now))

    async def check_join(
        self, identity: Identity, conference_id: str, password: object
    ) -> JoinableConference:
        def check(s: Session) -> JoinableConference:
            row = conferences.check_join(s, identity, conference_id, password, self.region)
            return JoinableConference(
                row.id, row.enterprise_id, row.owner_id, row.locked, row.escalation
            )

        return await self._run(check)

    async def check_recording_quota(self, account_id: str) -> None:
        """Refuse (Forbidden) a recording by a member of a segment whose quota is used up."""
        now = self.clock.now()
        await self._run(lambda s: segments.check_recording_quota(s, account_id, now))

    async def policy(self, enterprise_id: str) -> EnterprisePolicy:
        def read(s: Session) -> EnterprisePolicy:
            enterprise = s.get(Enterprise, enterprise_id)
            if enterprise is None:
                return EnterprisePolicy(False, False, False)
            return EnterprisePolicy(
                bool(enterprise.chat_enabled),
                bool(enterprise.recording_enabled),
                bool(enterprise.live_streaming_enabled),
            )

        return await self._run(read)

    # -- writes ---------------------------------------------------------------------------------

    async def persist_lock(self, conference_id: str, locked: bool) -> None:
        def write(s: Session) -> None:
            conference = s.get(Conference, conference_id)
            if conference is not None:
                conference.locked = locked

        await self._run(write)

    async def open_call(self, call_id: str, enterprise_id: str, conference_id: str) -> None:
        now = self.clock.now()
        await self._run(
            lambda s: cdr.open_call(s, enterprise_id, conference_id, self.region, now, call_id)
        )

    async def open_leg(self, call_id: str, account_id: str, encrypted: bool, transport: str) -> int:
        now = self.clock.now()
        return await self._run(
            lambda s: cdr.open_leg(s, call_id, account_id, now, encrypted, transport)
        )

    async def close_leg(self, leg_id: int) -> None:
        now = self.clock.now()
        await self._run(lambda s: cdr.close_leg(s, leg_id, now))

    async def close_call(self, call_id: str) -> None:
        now = self.clock.now()
        await self._run(lambda s: cdr.close_call(s, call_id, now))

    async def start_recording(
        self,
        recording_id: str,
        conference_id: str,
        recorder_id: str,
        participant_account_ids: Sequence[str],
    ) -> None:
        now = self.clock.now()

        def start(s: Session) -> None:
            conference = conferences.locate(s, conference_id, self.region)
            recording.begin(
                s,
                self.storage,
                conference,
                recorder_id,
                participant_account_ids,
                now,
                recording_id=recording_id,
            )

        await self._run(start)

    async def add_recording_participant(self, recording_id: str, account_id: str) -> None:
        await self._run(lambda s: recording.add_participant(s, recording_id, account_id))

    async def append_recording_media(self, recording_id: str, pcm: bytes) -> None:
        """The recorder's audio (services/meeting/media/recorder.py), onto the encrypted file."""
        await self._run(lambda s: recording.append_media(s, self.storage, recording_id, pcm))

    async def stop_recording(self, recording_id: str) -> None:
        now = self.clock.now()
        await self._run(lambda s: recording.stop(s, self.storage, recording_id, now))

    async def finish(self, conference_id: str) -> bool:
        """The session has ended: a one-off conference is deleted (True when it was)."""
        return await self._run(lambda s: conferences.finish(s, conference_id))
