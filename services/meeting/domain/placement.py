"""Conference placement (MT-01), sans-IO: pick the region that serves the initial participants best.

The latency matrix (location -> region -> one-way milliseconds) comes from configuration; this
module only computes. The chosen region minimises the mean latency over the participants, then the
worst single latency, then follows the order of the regions given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.common.errors import Invalid

LatencyMatrix = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Placement:
    region: str
    mean_latency_ms: float
    max_latency_ms: float
    candidates: dict[str, float]


def validate_matrix(matrix: LatencyMatrix, regions: Sequence[str]) -> None:
    """Every location must give a non-negative latency to every region."""
    if not matrix:
        raise ValueError("the latency matrix is empty")
    for location, row in matrix.items():
        missing = [r for r in regions if r not in row]
        if missing:
            raise ValueError(f"location {location!r} has no latency to {', '.join(missing)}")
        if any(value < 0 for value in row.values()):
            raise ValueError(f"location {location!r} has a negative latency")


def place(
    locations: Sequence[str],
    matrix: LatencyMatrix,
    regions: Sequence[str],
    field: str = "participant_locations",
) -> Placement:
    if not locations:
        raise Invalid("at least one participant location is needed", field=field)
    if not regions:
        raise ValueError("no regions to place into")
    for index, location in enumerate(locations):
        if location not in matrix:
            raise Invalid(f"unknown location {location!r}", field=f"{field}.{index}")
    scores: list[tuple[float, float, int, str]] = []
    means: dict[str, float] = {}
    for order, region in enumerate(regions):
        latencies = [float(matrix[loc][region]) for loc in locations]
        mean = sum(latencies) / len(latencies)
        means[region] = round(mean, 3)
        scores.append((mean, max(latencies), order, region))
    mean, worst, _order, region = min(scores)
    return Placement(region, round(mean, 3), worst, means)
