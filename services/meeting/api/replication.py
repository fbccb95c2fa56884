"""The replicated meeting region's side of signaling (docs/meeting-replicas.md): who this replica is,
the bus and the shared store, and the participants whose sockets another replica holds.

A live conference has one owner replica (`conference_owners`, with a lease this replica renews
every `RENEW_SECONDS`). A participant's socket may be on any replica; that replica signs it in and
checks every message, then forwards it on the bus to the owner, which runs the session. What the
session sends a participant goes back on the participant's subject to the replica holding its
socket. On the owner, such a participant is a `RemoteParticipant`.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from protocol import signaling as wire
from services.meeting.api.bus import Bus
from services.meeting.domain.accounts import Identity
from services.meeting.domain.legs import LegKind
from services.meeting.store.conference_store import JoinableConference
from services.meeting.store.replica_store import ReplicaStore

RENEW_SECONDS = 0.25


def new_replica_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Replication:
    bus: Bus
    store: ReplicaStore
    replica_id: str


def identity_body(identity: Identity) -> dict[str, Any]:
    return {
        "account_id": identity.account_id,
        "enterprise_id": identity.enterprise_id,
        "username": identity.username,
        "display_name": identity.display_name,
        "role": identity.role,
        "kind": identity.kind,
        "permissions": sorted(identity.permissions),
    }


def identity_from(body: dict[str, Any]) -> Identity:
    return Identity(
        str(body["account_id"]),
        str(body["enterprise_id"]),
        str(body["username"]),
        str(body["display_name"]),
        str(body["role"]),
        str(body["kind"]),
        frozenset(str(p) for p in body["permissions"]),
    )


def conference_body(conference: JoinableConference) -> dict[str, Any]:
    return {
        "conference_id": conference.conference_id,
        "enterprise_id": conference.enterprise_id,
        "owner_id": conference.owner_id,
        "locked": conference.locked,
        "escalation": conference.escalation,
    }


def conference_from(body: dict[str, Any]) -> JoinableConference:
    return JoinableConference(
        str(body["conference_id"]),
        str(body["enterprise_id"]),
        str(body["owner_id"]),
        bool(body["locked"]),
        bool(body["escalation"]),
    )


@dataclass(eq=False)
class RemoteParticipant:
    """On the owner: a participant whose socket another replica holds."""

    bus: Bus
    participant_id: str
    identity: Identity | None
    leg: LegKind = LegKind.CLIENT
    conference_id: str | None = None
    closed: bool = False

    async def send(self, message: wire.Message | dict[str, Any]) -> None:
        body = message.encode() if isinstance(message, wire.Message) else message
        await self.bus.publish(self.bus.participant_subject(self.participant_id), {"send": body})

    async def close(self, code: int, reason: str) -> None:
        await self.bus.publish(
            self.bus.participant_subject(self.participant_id),
            {"close": {"code": code, "reason": reason}},
        )
