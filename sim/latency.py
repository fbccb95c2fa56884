"""The inter-region latency matrix the simulator uses: the very matrix conference placement reads.

Everything that needs latencies goes through `latency_matrix()`, so the file (or, later, a loader
in the meeting service) can change in one place.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from protocol.regions import MEETING_REGIONS
from services.meeting.domain.placement import LatencyMatrix, validate_matrix

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1] / "services" / "meeting" / "config" / "latency.yaml"
)


@lru_cache(maxsize=8)
def _read(path: str) -> dict[str, dict[str, float]]:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the latency matrix must be a mapping")
    matrix = {str(k): {str(r): float(v) for r, v in row.items()} for k, row in data.items()}
    validate_matrix(matrix, MEETING_REGIONS)
    return matrix


def latency_matrix(path: Path | str | None = None) -> LatencyMatrix:
    """location -> meeting region -> round-trip milliseconds (ROOMTRUST_MEETING_LATENCY_FILE wins)."""
    chosen = path or os.environ.get("ROOMTRUST_MEETING_LATENCY_FILE") or DEFAULT_FILE
    return _read(str(chosen))


def rtt_seconds(location: str, region: str, matrix: LatencyMatrix | None = None) -> float:
    """Round-trip time from a placement location to a meeting region, in seconds."""
    return float((matrix or latency_matrix())[location][region]) / 1000.0
