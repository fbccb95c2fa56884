"""The message bus between the replicas of a meeting region: core NATS (no JetStream), so nothing
that crosses it (chat included, MT-18) is stored by the broker; a message is in flight or gone.

Subjects, per region R:
- `roomtrust.meeting.R.conference.<conference_id>`: requests to the replica that owns a live
  conference (a participant's message, join, leave); only the owner subscribes.
- `roomtrust.meeting.R.participant.<participant_id>`: what is to be sent to a participant, or its
  socket closed; only the replica holding the participant's socket subscribes.

Payloads are JSON objects.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
REQUEST_TIMEOUT = 2.0


class Unreachable(Exception):
    """Nobody answered on the subject (no owner subscribed, or it did not answer in time)."""


class Bus:
    def __init__(self, url: str, region: str) -> None:
        self.url = url
        self.region = region
        self._nc: Client | None = None

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.url,
            name=f"roomtrust-meeting-{self.region}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
        )

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the bus is not connected")
        return self._nc

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None

    def conference_subject(self, conference_id: str) -> str:
        return f"roomtrust.meeting.{self.region}.conference.{conference_id}"

    def participant_subject(self, participant_id: str) -> str:
        return f"roomtrust.meeting.{self.region}.participant.{participant_id}"

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        """Handle each message in order; a request gets the handler's answer as its reply (none
        when the handler returns None)."""

        async def receive(msg: Msg) -> None:
            try:
                body = json.loads(msg.data)
            except ValueError:
                return
            answer = await handler(body if isinstance(body, dict) else {})
            if msg.reply and answer is not None:  # None: not this subscriber's to answer
                await msg.respond(json.dumps(answer).encode())

        return await self.nc.subscribe(subject, cb=receive)

    async def publish(self, subject: str, body: dict[str, Any]) -> None:
        await self.nc.publish(subject, json.dumps(body).encode())

    async def request(
        self, subject: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        try:
            msg = await self.nc.request(subject, json.dumps(body).encode(), timeout=timeout)
        except (NoRespondersError, NatsTimeout) as exc:
            raise Unreachable(subject) from exc
        answer = json.loads(msg.data)
        return answer if isinstance(answer, dict) else {}
