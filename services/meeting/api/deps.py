"""Dependencies of the meeting API's routers: the region they serve and who is calling.

A caller is an administrator or a user (a session token) or a room system (its client certificate,
verified by the TLS layer). `Caller.run` authenticates it inside the transaction of the work it
asks for, as every request is checked afresh: so a refused credential and the work never see two
different states, and a malformed body is answered 422 before anything is looked up. What each
identity may do is the domain's permission matrix, checked by the domain functions themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from services.common.api import bearer_token, client_certificate
from services.common.clock import Clock
from services.common.db import transaction
from services.common.runtime import RegionRuntime
from services.meeting.api.signaling import Signaling
from services.meeting.domain import accounts
from services.meeting.domain.accounts import Identity
from services.meeting.domain.placement import LatencyMatrix
from services.meeting.domain.recording import RecordingStorage

T = TypeVar("T")


@dataclass(frozen=True)
class MeetingRegion:
    """What the routers of one meeting region share (built once by `build_app`)."""

    runtime: RegionRuntime
    matrix: LatencyMatrix
    storage: RecordingStorage
    signaling: Signaling

    @property
    def region(self) -> str:
        return self.runtime.region

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def in_tx(self, fn: Callable[[Session], T]) -> T:
        with transaction(self.runtime.sessions) as session:
            return fn(session)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """`fn` in one transaction, in a worker thread."""
        return await run_in_threadpool(self.in_tx, fn)


def meeting_region(connection: HTTPConnection) -> MeetingRegion:
    return cast(MeetingRegion, connection.app.state.meeting)


Region = Annotated[MeetingRegion, Depends(meeting_region)]


@dataclass(frozen=True)
class AccountCaller:
    """The credentials of a request: an administrator's or user's session token, or a room
    system's client certificate."""

    region: MeetingRegion
    token: str | None
    cert: str | None

    async def run(self, fn: Callable[[Session, Identity], T]) -> T:
        """`fn` with the caller's identity, checked now, in the same transaction."""
        now = self.region.clock.now()
        token, cert = self.token, self.cert
        return await self.region.run(lambda s: fn(s, accounts.authenticate(s, token, cert, now)))


def account_caller(request: Request, region: Region) -> AccountCaller:
    return AccountCaller(region, bearer_token(request), client_certificate(request))


Caller = Annotated[AccountCaller, Depends(account_caller)]
