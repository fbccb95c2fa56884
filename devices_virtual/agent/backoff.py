"""Exponential backoff without randomness of its own; a driver may pass a jitter function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 30.0
    factor: float = 2.0
    cap: float = 900.0

    def delay(self, attempt: int, jitter: Callable[[float], float] | None = None) -> float:
        """Delay before retry number `attempt` (1-based)."""
        base = min(self.cap, self.initial * self.factor ** max(0, attempt - 1))
        return jitter(base) if jitter is not None else base
