"""Steps of features/sim.feature (MT-01, MT-03) against simulation result records.

Under `roomtrust comply --target sim[:DIR]` the records come from the target; a plain pytest run
makes fresh ones with `roomtrust sim run`'s own code into a temporary folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import comply_target, evidence  # noqa: F401
from roomtrust.comply.plugin import comply_session
from roomtrust.comply.targets import SimTarget, Target

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
REGIONS = ("na", "sa", "eu", "asia")


def _fresh(name: str, folder: Path) -> list[dict[str, Any]]:
    from sim.models import run_model
    from sim.report import write_outputs
    from sim.scenario import load_sim_scenario

    write_outputs(run_model(load_sim_scenario(SCENARIOS / f"{name}.yaml")), folder)
    return SimTarget("sim", "sim", {"results": str(folder)}).sim_results()


@given(parsers.parse('the simulation results of scenario "{name}"'), target_fixture="record")
def _record(
    request: pytest.FixtureRequest,
    comply_target: Target,  # noqa: F811
    evidence: Evidence,  # noqa: F811
    tmp_path: Path,
    name: str,
) -> dict[str, Any]:
    if comply_session(request.config) is not None:
        records = comply_target.sim_results()
    else:
        records = _fresh(name, tmp_path / "sim")
    chosen = [r for r in records if r.get("scenario") == name and "metrics" in r]
    assert chosen, f"no result record of {name}; run `roomtrust sim run scenarios/{name}.yaml`"
    record = chosen[-1]
    evidence.write_json(
        f"{name}-metrics.json", {"source": record.get("source"), **record["metrics"]}
    )
    return record


@then("the results hold placements of conferences")
def _placements(record: dict[str, Any]) -> None:
    assert record["series"].get("placements"), "the record has no placements"


@then(
    "every conference went to the region with the least mean latency for its initial participants"
)
def _optimal(record: dict[str, Any]) -> None:
    from sim.latency import latency_matrix

    matrix = latency_matrix()
    placements = record["series"]["placements"]
    assert placements
    for p in placements:
        offered = [r for r in REGIONS if r in p["candidates"]]
        assert offered, p
        means = {
            r: sum(matrix[loc][r] for loc in p["locations"]) / len(p["locations"]) for r in offered
        }
        assert means[p["region"]] == min(means.values()), p


@then("conferences from Asia, Europe and North America went to asia, eu and na")
def _by_continent(record: dict[str, Any]) -> None:
    home = {"singapore": "asia", "japan": "asia", "germany": "eu", "us-east": "na"}
    local = [p for p in record["series"]["placements"] if len(set(p["locations"])) == 1]
    seen = {home[p["locations"][0]] for p in local if p["locations"][0] in home}
    assert seen >= {"asia", "eu", "na"}, seen
    for p in local:
        if p["locations"][0] in home:
            assert p["region"] == home[p["locations"][0]], p


@then("at least one relay failed while it carried calls")
def _failed(record: dict[str, Any]) -> None:
    m = record["metrics"]
    assert m["relay_failures"] >= 1
    assert m["moved_calls"] >= 1, "the failed relays carried no call: nothing was checked"


@then("no call was dropped")
def _no_drop(record: dict[str, Any]) -> None:
    assert record["metrics"]["dropped_calls"] == 0


@then(parsers.parse("every failed relay was replaced within {minutes:d} minutes"))
def _replaced(record: dict[str, Any], minutes: int) -> None:
    replacements = record["series"]["replacements"]
    assert len(replacements) == record["metrics"]["relay_failures"]
    assert all(r["replaced_after_s"] <= minutes * 60 for r in replacements), replacements
