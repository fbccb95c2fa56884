"""Where the relay control plugs into signaling: media keys for admitted participants only.

`services.meeting.media.pool.RelayPool` is the region's hook (services/meeting/main.py wires it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


class MediaKeyHook(Protocol):
    """Keys for an admitted participant, withdrawn when it departs. With `rekey`, the hook gives
    everyone left new keys (through `Signaling.push`)."""

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None: ...

    async def withdraw(
        self, conference_id: str, participant_id: str, rekey: bool = True
    ) -> None: ...


@runtime_checkable
class SupervisedMedia(Protocol):
    """A media-key hook that also watches its relays for the region's lifetime (failover)."""

    async def run(self, notify: Notify) -> None: ...


@runtime_checkable
class RefreshableMedia(Protocol):
    """A hook that can give a conference's participants fresh keys when one of them resumed with
    a grant for a relay the conference is no longer on (it missed the move while away)."""

    async def refresh(self, conference_id: str, relay: str) -> None: ...


class NoMediaKeys:
    """No relays: nobody gets keys (the API alone, as in the in-process tests)."""

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        return None

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        return None
