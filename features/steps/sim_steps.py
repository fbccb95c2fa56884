"""Steps of features/sim.feature (MT-01, MT-03) against simulation result records.

Under `roomtrust comply --target sim[:DIR]` the records come from the target; a plain pytest run
makes fresh ones with `roomtrust sim run`'s own code into a temporary folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from roomtrust.comply.checks import sim as checks
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import comply_target, evidence  # noqa: F401
from roomtrust.comply.plugin import comply_session
from roomtrust.comply.targets import SimTarget, Target

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


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
    checks.has_placements(record)


@then(
    "every conference went to the region with the least mean latency for its initial participants"
)
def _optimal(record: dict[str, Any]) -> None:
    from sim.latency import latency_matrix

    checks.placements_optimal(record, latency_matrix())


@then("conferences from Asia, Europe and North America went to asia, eu and na")
def _by_continent(record: dict[str, Any]) -> None:
    checks.placed_by_continent(record)


@then("at least one relay failed while it carried calls")
def _failed(record: dict[str, Any]) -> None:
    checks.relay_failed_under_load(record)


@then("no call was dropped")
def _no_drop(record: dict[str, Any]) -> None:
    checks.no_call_dropped(record)


@then(parsers.parse("every failed relay was replaced within {minutes:d} minutes"))
def _replaced(record: dict[str, Any], minutes: int) -> None:
    checks.replaced_within(record, minutes)
