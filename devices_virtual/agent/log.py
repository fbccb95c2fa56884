"""The device agent's own log: a bounded ring of what it did, filtered by its log level.

A line is recorded only at or above the level in force when it happens (the level is part of the
applied configuration, `log.level`), and the ring keeps the newest `capacity` lines. Lines hold
what the device did (boot steps, hosts contacted, configuration keys and versions, update stages),
never end-user data, so they may go into a diagnostics bundle as they are.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from devices_virtual.models import LOG_LEVELS

DEBUG, INFO, WARNING, ERROR = LOG_LEVELS
_RANK: Final = {level: rank for rank, level in enumerate(LOG_LEVELS)}


class AgentLog:
    __slots__ = ("_floor", "_lines", "level")

    def __init__(self, level: str = INFO, capacity: int = 200) -> None:
        if capacity < 1:
            raise ValueError("a log keeps at least one line")
        self._lines: deque[str] = deque(maxlen=capacity)
        self.level = level
        self._floor = _RANK[level]

    def set_level(self, level: str) -> None:
        self.level, self._floor = level, _RANK[level]

    def wants(self, level: str) -> bool:
        return _RANK[level] >= self._floor

    def add(self, now: float, level: str, message: str, *args: object) -> None:
        """Record `message % args` at `level`; below the log level nothing is formatted."""
        if _RANK[level] < self._floor:
            return
        text = message % args if args else message
        self._lines.append(f"{now:.3f} {level.upper()} {text}")

    def lines(self) -> list[str]:
        """The kept lines at or above the current level, oldest first."""
        return [line for line in self._lines if _RANK[line_level(line)] >= self._floor]

    def __len__(self) -> int:
        return len(self._lines)


def line_level(line: str) -> str:
    """The level of a recorded line (`"12.345 INFO text"` -> `"info"`)."""
    return line.split(" ", 2)[1].lower()
