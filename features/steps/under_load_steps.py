"""Steps of features/under_load.feature: DM-02, 04, 09 and 11 while 300 devices load DM region us.

The load is one `roomtrust load scenarios/load-300.yaml` run, started once per test module by the
`device_load` fixture and shared by the scenarios. It runs in its own processes: Locust (gevent)
is never imported into the test process (locust #2250). The steps of dm.feature and tls.feature
are reused as they are; the ones here add what only a load can show: which rows the load itself
stored, and, from Locust's statistics, that the load ran and was served across each scenario's
checks (`load.window`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, then

from load.kinds import HTTP, endpoint
from load.window import (
    AGGREGATED,
    HistoryRow,
    carried_on,
    read_history,
    running_throughout,
)
from protocol.stack import Stack
from roomtrust.comply.checks import common, require
from roomtrust.comply.checks import under_load as checks
from roomtrust.comply.evidence import Evidence, nonempty
from roomtrust.comply.fixtures import comply_target, evidence
from roomtrust.comply.targets import Target, TlsEndpoint
from roomtrust.harness.load import (
    LOAD_NAME,
    LOAD_REGION,
    LOAD_SCENARIO,
    LOAD_USERS,
    latest,
    load_is_ready,
)
from roomtrust.harness.stores import (
    max_telemetry_id,
    region_engine,
    stored_places,
    telemetry_since,
)
from services.dm.client import DeviceCredential

FIXTURES = (comply_target, evidence)  # made visible to the scenarios that import these steps

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0  # provisioning, Locust's start, every device enrolled
ROW_AFTER_TIMEOUT_S = 12.0  # Locust flushes its CSV every 5 s
STORED_TIMEOUT_S = 10.0  # for the first telemetry row of the load after the scenario began


@dataclass
class DeviceLoad:
    """A running `roomtrust load` and where it writes: Locust's CSV and the provisioned
    identities (under the stack home's `load/`)."""

    process: subprocess.Popen[bytes]
    home: Path
    run_dir: Path
    log: Path
    users: int
    region: str
    began: float  # epoch seconds

    def history(self) -> list[HistoryRow]:
        return read_history(self.run_dir / "stats_stats_history.csv")

    def provision(self) -> dict[str, Any]:
        made = [
            p
            for p in (self.home / "load").glob(f"{LOAD_NAME}-*.json")
            if p.stat().st_mtime >= self.began - 1
        ]
        nonempty(made, f"provision files of this {LOAD_NAME} run")
        data: dict[str, Any] = json.loads(max(made, key=lambda p: p.stat().st_mtime).read_text())
        return data

    def device_ids(self) -> set[str]:
        return {str(d["device_id"]) for d in self.provision()["identities"]["device"]}

    def dm_urls(self) -> set[str]:
        targets = self.provision()["targets"].values()
        return {t["dm"]["url"] for t in targets if t.get("dm", {}).get("region") == self.region}

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        run_log = self.run_dir / "locust.log"
        if run_log.exists():
            text += run_log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_for(
        self, ready: Callable[[list[HistoryRow]], bool], timeout: float
    ) -> tuple[bool, list[HistoryRow]]:
        """Poll Locust's history until `ready` holds or `timeout` passes (or the run ends)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.history()
            if ready(rows):
                return True, rows
            if time.monotonic() > deadline or self.process.poll() is not None:
                return False, rows
            time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate `roomtrust load` (it then stops its Locust process), killing it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def device_load(
    live_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeviceLoad]:
    """`roomtrust load scenarios/load-300.yaml` in the background against the stack, ready once
    all 300 devices have enrolled and send telemetry; stopped when the module's scenarios end."""
    out = tmp_path_factory.mktemp(LOAD_NAME)
    log = out / "roomtrust-load.log"
    home = live_stack.home
    command = [sys.executable, "-m", "load", str(LOAD_SCENARIO), "--home", str(home)]
    command += ["--out", str(out)]
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    load = DeviceLoad(
        process, home, out / LOAD_NAME, log, LOAD_USERS, LOAD_REGION, began=time.time()
    )
    try:
        ready, rows = load.wait_for(lambda r: load_is_ready(r, LOAD_USERS), READY_TIMEOUT_S)
        if not ready:
            last = latest(rows, AGGREGATED)
            pytest.fail(
                f"the load of {LOAD_USERS} devices was not running within {READY_TIMEOUT_S:g} s "
                f"(last statistics: {last}); roomtrust load said:\n{load.log_tail()}"
            )
        yield load
    finally:
        _stop(process)


# -- steps ---------------------------------------------------------------------------------------


@given(
    parsers.parse('a load of {users:d} deployed devices runs against DM region "{region}"'),
)
def _load_runs(
    stack: Stack, ctx: dict[str, Any], device_load: DeviceLoad, users: int, region: str
) -> None:
    require(device_load.users == users, f"the load runs {device_load.users} devices, not {users}")
    require(device_load.region == region, f"the load runs against {device_load.region}")
    url = stack.endpoint("dm", region).url
    require(url in device_load.dm_urls(), f"the load does not target {url}")
    engine = region_engine(stack, "dm", region)
    try:
        ctx["telemetry_mark"] = max_telemetry_id(engine)
    finally:
        engine.dispose()
    ctx["checks_from"] = time.time()


def _region_places(stack: Stack, region: str) -> list[tuple[str, str]]:
    """Every stored value of a DM region, as `stored_places` gives them."""
    engine = region_engine(stack, "dm", region)
    try:
        return stored_places(engine)
    finally:
        engine.dispose()


@then(parsers.parse('nothing of the device is stored in region "{region}"'))
def _nothing_of_the_device(stack: Stack, device: DeviceCredential, region: str) -> None:
    places = _region_places(stack, region)
    for needle in (device.mac, device.serial_number):
        common.secret_nowhere(needle.lower(), places)


@then(parsers.parse('no row of region "{region}" holds the field "{field}"'))
def _field_nowhere(stack: Stack, region: str, field: str) -> None:
    common.secret_nowhere(field.lower(), _region_places(stack, region))


@then("the load's own telemetry was stored meanwhile, with listed fields only")
def _load_telemetry_stored(stack: Stack, ctx: dict[str, Any], device_load: DeviceLoad) -> None:
    devices = device_load.device_ids()
    engine = region_engine(stack, "dm", device_load.region)
    deadline = time.monotonic() + STORED_TIMEOUT_S
    try:
        reports = telemetry_since(engine, ctx["telemetry_mark"], devices)
        while not reports and time.monotonic() < deadline:
            time.sleep(0.5)
            reports = telemetry_since(engine, ctx["telemetry_mark"], devices)
    finally:
        engine.dispose()
    checks.listed_telemetry_stored(reports)


@given(
    parsers.parse('the DM endpoint of region "{region}" that carries the load'),
    target_fixture="endpoints",
)
def _loaded_endpoint(
    comply_target: Target, device_load: DeviceLoad, region: str
) -> list[TlsEndpoint]:
    urls = device_load.dm_urls()
    chosen = [e for e in comply_target.endpoints("dm") if e.region == region and e.url in urls]
    return list(nonempty(chosen, f'DM endpoints of region "{region}" that the load targets'))


@then(parsers.parse("the load of {users:d} devices ran throughout the checks"))
def _ran_throughout(
    ctx: dict[str, Any], device_load: DeviceLoad, evidence: Evidence, users: int
) -> None:
    started, ended = ctx["checks_from"], time.time()
    _seen, rows = device_load.wait_for(
        lambda r: any(x.name == AGGREGATED and x.timestamp >= ended for x in r),
        ROW_AFTER_TIMEOUT_S,
    )
    provisioned = len(device_load.provision()["identities"]["device"])
    record: dict[str, Any] = {
        "checks": [started, ended],
        "users": users,
        "provisioned": provisioned,
    }
    evidence.write_json("load-window.json", record)  # kept even when the check fails
    checks.load_ran(rows, started, ended, users, provisioned)
    bracket = running_throughout(rows, started, ended, users)  # found, as the check showed
    evidence.write_json("load-window.json", {**record, **bracket.to_dict()})
    ctx["bracket"], ctx["history"] = bracket, rows


@then("the load's heartbeats and telemetry were all accepted meanwhile")
def _carried_on(ctx: dict[str, Any], evidence: Evidence) -> None:
    kinds = [(HTTP, endpoint("dm", "heartbeat")), (HTTP, endpoint("dm", "telemetry"))]
    checks.load_carried_on(ctx["history"], ctx["bracket"], kinds)
    figures = carried_on(ctx["history"], ctx["bracket"], kinds)  # as the check found them
    evidence.write_json("load-carried-on.json", {n: list(f) for n, f in figures.items()})
