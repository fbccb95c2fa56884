"""Erlang B (loss) and Erlang C (delay) formulas, computed with the stable recursion.

`a` is the offered load in erlangs (arrival rate times mean service time) and `c` the number of
servers. The recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)) never forms a factorial or a
power, so it stays exact to rounding for thousands of servers.
"""

from __future__ import annotations

import math


def _check(c: int, a: float) -> None:
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"servers must be a positive integer, not {c!r}")
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"offered load must be a finite number >= 0, not {a!r}")


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of an M/M/c/c loss system (Erlang B)."""
    _check(c, a)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C); needs a < c."""
    _check(c, a)
    if a >= c:
        raise ValueError(f"an M/M/c queue with load {a} on {c} servers is unstable")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def erlang_c_mean_wait(c: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue (before service) of an M/M/c queue: C(c, a) / (c mu - lambda)."""
    if service_rate <= 0:
        raise ValueError("service rate must be positive")
    a = arrival_rate / service_rate
    return erlang_c(c, a) / (c * service_rate - arrival_rate)


def erlang_b_capacity(a: float, blocking: float) -> int:
    """The fewest servers that keep Erlang B blocking at or below `blocking` for load `a`."""
    if not 0 < blocking < 1:
        raise ValueError("blocking target must lie strictly between 0 and 1")
    _check(1, a)
    c, b = 0, 1.0
    while b > blocking:
        c += 1
        b = a * b / (c + a * b)
    return max(c, 1)
