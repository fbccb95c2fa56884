"""Injectable clocks: the services and their retention jobs read time only through these."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(when: dt.datetime) -> dt.datetime:
    """Stored times are UTC; SQLite hands them back naive, PostgreSQL aware."""
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """Wall-clock time, always timezone-aware UTC."""

    def now(self) -> dt.datetime:
        return utcnow()


class ManualClock:
    """A clock that tests and simulations move by hand."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or utcnow()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def set(self, when: dt.datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        with self._lock:
            self._now += delta
            return self._now


class OffsetClock:
    """Wall-clock time shifted by an offset that an operator can move (used by the local stack)."""

    def __init__(self, offset: dt.timedelta = dt.timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> dt.datetime:
        return utcnow() + self.offset
