"""The pass/fail verdict of a load run: failure ratio and p95 against the scenario's thresholds.

The figures come from Locust's own statistics (one row per request type and endpoint kind, plus the
aggregated row); the verdict lists every broken threshold with the measured value beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from load.scenario import Thresholds

TOTAL = "Aggregated"


@dataclass(frozen=True, slots=True)
class Figures:
    """One row of Locust's statistics."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    rps: float = 0.0

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass
class Verdict:
    passed: bool
    broken: list[str] = field(default_factory=list)
    figures: list[Figures] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "broken": self.broken,
            "endpoints": [asdict(f) for f in self.figures],
        }


def evaluate(thresholds: Thresholds, rows: Iterable[Figures]) -> Verdict:
    """Check every threshold. The overall ones apply to the aggregated row; an endpoint
    threshold applies to every row of that name (whatever its request type)."""
    rows = list(rows)
    total = next((r for r in rows if r.name == TOTAL), None)
    broken: list[str] = []
    if total is None or total.requests == 0:
        broken.append("no requests were made")
    else:
        if total.fail_ratio > thresholds.fail_ratio:
            broken.append(
                f"failure ratio {total.fail_ratio:.4f} > {thresholds.fail_ratio} "
                f"({total.failures} of {total.requests})"
            )
        if thresholds.p95_ms is not None and total.p95_ms > thresholds.p95_ms:
            broken.append(f"p95 {total.p95_ms:.0f} ms > {thresholds.p95_ms:g} ms (all requests)")
    for name, limit in thresholds.endpoints.items():
        matching = [r for r in rows if r.name == name]
        if not matching:
            broken.append(f"{name}: no requests were made")
            continue
        for row in matching:
            where = f"{row.method} {row.name}"
            if limit.p95_ms is not None and row.p95_ms > limit.p95_ms:
                broken.append(f"{where}: p95 {row.p95_ms:.0f} ms > {limit.p95_ms:g} ms")
            if limit.fail_ratio is not None and row.fail_ratio > limit.fail_ratio:
                broken.append(
                    f"{where}: failure ratio {row.fail_ratio:.4f} > {limit.fail_ratio} "
                    f"({row.failures} of {row.requests})"
                )
    return Verdict(not broken, broken, rows)
