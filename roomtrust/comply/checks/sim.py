"""Checks of features/sim.feature (MT-01 placement, MT-03 failover) over a simulation result
record: `{"scenario", "metrics": {...}, "series": {"placements": [...], "replacements": [...]}}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol.regions import MEETING_REGIONS
from roomtrust.comply.checks import check, require, selected

REGIONS = MEETING_REGIONS
HOME_OF = {"singapore": "asia", "japan": "asia", "germany": "eu", "us-east": "na"}


def _placements(record: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    placements: Sequence[Mapping[str, Any]] = (record.get("series") or {}).get("placements") or []
    return selected(placements, "placements of conferences in the record")


@check("sim")
def has_placements(record: Mapping[str, Any]) -> None:
    """The record holds placements of conferences to check."""
    _placements(record)


@check("sim")
def placements_optimal(
    record: Mapping[str, Any], matrix: Mapping[str, Mapping[str, float]]
) -> None:
    """Each conference went to the offered region with the least mean latency for its initial
    participants (`matrix`: location -> region -> round-trip ms)."""
    wrong = []
    for p in _placements(record):
        offered = [r for r in REGIONS if r in p.get("candidates", ())]
        locations = list(p.get("locations") or [])
        require(offered and locations, f"a placement with no candidates or locations: {p}")
        unknown = [loc for loc in locations if loc not in matrix]
        require(not unknown, f"locations {unknown} are not in the latency matrix")
        means = {r: sum(matrix[loc][r] for loc in locations) / len(locations) for r in offered}
        if means.get(p.get("region", "")) != min(means.values()):
            wrong.append(f"{locations} went to {p.get('region')}, mean latencies {means}")
    require(not wrong, f"{len(wrong)} conference(s) not in the nearest region, e.g. {wrong[:2]}")


@check("sim")
def placed_by_continent(record: Mapping[str, Any]) -> None:
    """Conferences whose initial participants are all in Asia, Europe or North America went to
    asia, eu and na, and each continent occurs."""
    local = [p for p in _placements(record) if len(set(p.get("locations") or [])) == 1]
    ours = [p for p in local if p["locations"][0] in HOME_OF]
    seen = {HOME_OF[p["locations"][0]] for p in ours}
    require(seen >= {"asia", "eu", "na"}, f"local conferences only from {sorted(seen)}")
    wrong = [
        f"{p['locations'][0]} -> {p.get('region')}"
        for p in ours
        if p.get("region") != HOME_OF[p["locations"][0]]
    ]
    require(not wrong, f"local conferences placed away from home: {wrong[:5]}")


def _metric(record: Mapping[str, Any], name: str) -> float:
    metrics = record.get("metrics") or {}
    require(name in metrics, f"the record has no metric {name!r}")
    value = metrics[name]
    require(isinstance(value, int | float), f"metric {name} is {value!r}, not a number")
    return float(value)


@check("sim")
def relay_failed_under_load(record: Mapping[str, Any]) -> None:
    """At least one relay failed, and the failed relays carried calls that had to move."""
    require(_metric(record, "relay_failures") >= 1, "no relay failed in the simulation")
    require(
        _metric(record, "moved_calls") >= 1,
        "the failed relays carried no call: nothing was checked",
    )


@check("sim")
def no_call_dropped(record: Mapping[str, Any]) -> None:
    """No call was dropped (and some calls were there to drop)."""
    dropped = _metric(record, "dropped_calls")
    require(dropped == 0, f"{dropped:g} call(s) were dropped")
    require(_metric(record, "moved_calls") >= 1, "no call was moved, so none could be dropped")


@check("sim")
def replaced_within(record: Mapping[str, Any], minutes: int) -> None:
    """Every failed relay was replaced, each within the limit."""
    replacements: Sequence[Mapping[str, Any]] = (record.get("series") or {}).get(
        "replacements"
    ) or []
    failures = _metric(record, "relay_failures")
    selected(replacements, "relay replacements in the record")
    require(
        len(replacements) == failures,
        f"{len(replacements)} replacement(s) for {failures:g} failed relay(s)",
    )
    late = [r for r in replacements if float(r.get("replaced_after_s", 1e18)) > minutes * 60]
    require(not late, f"relays replaced later than {minutes} minutes: {late[:3]}")
