"""Start, stop and inspect the local stack: one process per service region on 127.0.0.1 with TLS.

`start()` launches every region as its own process (own database, own CA under the stack's home),
waits until each has written its ready file, and writes `stack.json` (`protocol.stack`: the URLs and
CA bundles that every other tool reads). Each meeting region then gets its media relays (`ROOMTRUST_RELAYS_PER_REGION`,
default 1; `roomtrust up` starts 2, so a region can fail over at once), listed under `relays` in
`stack.json`; the region itself replaces a relay that dies. With `pstn`, a meeting region also gets
its PSTN gateway (`pstn` in `stack.json`).
The processes outlive the command; `stop()` ends them cleanly, relays last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from protocol.regions import DM_REGIONS, MEETING_REGIONS
from protocol.stack import (
    Endpoint,
    Gateway,
    Relay,
    Stack,
    StackError,
    read_stack,
    stack_file,
    write_stack,
)

# service name -> (module run with `python -m`, its regions)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dm": ("services.dm.main", DM_REGIONS),
}
if (Path(__file__).resolve().parents[2] / "services" / "meeting" / "main.py").exists():
    SERVICES["meeting"] = ("services.meeting.main", MEETING_REGIONS)

START_TIMEOUT = 60.0
RELAYS_ENV = "ROOMTRUST_RELAYS_PER_REGION"
DEFAULT_RELAYS = 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Launch:
    service: str
    region: str
    proc: subprocess.Popen[bytes]
    ready: Path
    log: Path


def _spawn(
    home: Path, service: str, region: str, port: int = 0, schema_prefix: str = ""
) -> _Launch:
    module = SERVICES[service][0]
    directory = home / service / region
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{service}-{region}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--region",
                region,
                "--home",
                str(home),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "ROOMTRUST_SCHEMA_PREFIX": schema_prefix},
        )
    return _Launch(service, region, proc, ready, log_path)


def _await_file(launch: _Launch, deadline: float) -> None:
    while not launch.ready.exists():
        if launch.proc.poll() is not None:
            raise StackError(
                f"{launch.service}/{launch.region} exited with {launch.proc.returncode}; "
                f"see {launch.log}"
            )
        if time.monotonic() > deadline:
            launch.proc.kill()
            raise StackError(f"{launch.service}/{launch.region} did not start in time")
        time.sleep(0.05)


def _await_ready(launch: _Launch, deadline: float) -> Endpoint:
    _await_file(launch, deadline)
    info = json.loads(launch.ready.read_text())
    return Endpoint(
        launch.service,
        launch.region,
        url=f"https://127.0.0.1:{info['port']}",
        ca_file=launch.ready.parent / "ca" / "ca.pem",
        pid=launch.proc.pid,
        port=int(info["port"]),
        module=SERVICES[launch.service][0],
        log=str(launch.log),
    )


def launch_region(
    home: Path, service: str, region: str, port: int = 0, schema_prefix: str = ""
) -> Endpoint:
    """Start one region process and wait for its ready file; returns its stack entry."""
    launch = _spawn(home, service, region, port, schema_prefix)
    return _await_ready(launch, time.monotonic() + START_TIMEOUT)


def start(
    home: Path,
    services: list[str] | None = None,
    schema_prefix: str | None = None,
    relays: int | Mapping[str, int] | None = None,
    pstn: bool | Sequence[str] = False,
) -> Stack:
    """Start the stack (or return the running one) and write stack.json.

    On PostgreSQL each region keeps its data in the schema `<schema_prefix><service>_<region>`;
    the prefix defaults to ROOMTRUST_SCHEMA_PREFIX, so two stacks can share one database.
    `relays` is the number of media relays per meeting region, or a count per region name
    (default: ROOMTRUST_RELAYS_PER_REGION, else 1). `pstn` starts the PSTN gateway of every
    meeting region (True) or of the regions named."""
    if schema_prefix is None:
        schema_prefix = os.environ.get("ROOMTRUST_SCHEMA_PREFIX", "")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if stack_file(home).exists():
        running = read_stack(home)
        if all(_alive(ep.pid) for ep in running.endpoints()):
            return running
        stop(home)
    stack = Stack(home, schema_prefix)
    launches = [
        _spawn(home, service, region, schema_prefix=schema_prefix)
        for service in services or list(SERVICES)
        for region in SERVICES[service][1]
    ]
    deadline = time.monotonic() + START_TIMEOUT
    try:
        for launch in launches:
            stack.add(_await_ready(launch, deadline))
        if "meeting" in stack.services:
            # relays and gateways start once their region is up; they get their own deadline
            stack.relays = start_relays(home, relay_counts(relays))
            gateways = list(MEETING_REGIONS) if pstn is True else list(pstn or ())
            stack.pstn = {region: launch_pstn(home, region) for region in gateways}
    except Exception:
        for launch in launches:
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        stop_relays(home)
        raise
    write_stack(stack)
    return stack


def relay_counts(relays: int | Mapping[str, int] | None) -> dict[str, int]:
    if relays is None:
        relays = int(os.environ.get(RELAYS_ENV, DEFAULT_RELAYS))
    if isinstance(relays, int):
        return dict.fromkeys(MEETING_REGIONS, relays)
    return {region: count for region, count in relays.items() if count > 0}


def _spawn_relay(home: Path, region: str, name: str) -> _Launch:
    from services.meeting.relay.files import ready_file

    ready = ready_file(home, region, name)
    ready.unlink(missing_ok=True)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"relay-{region}-{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "services.meeting.relay"),
                *("--region", region, "--home", str(home), "--name", name),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return _Launch("relay", region, proc, ready, log_path)


def start_relays(
    home: Path, counts: Mapping[str, int], deadline: float | None = None
) -> dict[str, dict[str, Relay]]:
    """Start relays (after their meeting regions, whose CA they use); returns their entries."""
    home = home.resolve()
    deadline = deadline or time.monotonic() + START_TIMEOUT
    launches = [
        _spawn_relay(home, region, f"relay-{index + 1}")
        for region, count in counts.items()
        for index in range(count)
    ]
    found: dict[str, dict[str, Relay]] = {}
    try:
        for launch in launches:
            _await_file(launch, deadline)
            relay = _relay_entry(launch)
            found.setdefault(launch.region, {})[relay.name] = relay
    except Exception:
        for launch in launches:  # ready or not, none of them outlives a failed start
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        raise
    return found


def _relay_entry(launch: _Launch) -> Relay:
    info = json.loads(launch.ready.read_text())
    return Relay(
        launch.region,
        str(info["name"]),
        launch.proc.pid,
        str(info["control_url"]),
        int(info["media_port"]),
        str(launch.log),
    )


def launch_pstn(home: Path, region: str, deadline: float | None = None) -> Gateway:
    """Start a meeting region's PSTN gateway (after the region) and wait until it is ready."""
    home = home.resolve()
    directory = home / "meeting" / region / "pstn"
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    log_path = home / "logs" / f"pstn-{region}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.meeting.pstn",
                "--region",
                region,
                "--home",
                str(home),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    launch = _Launch("pstn", region, proc, ready, log_path)
    _await_file(launch, deadline or time.monotonic() + START_TIMEOUT)
    info = json.loads(ready.read_text())
    return Gateway(region, proc.pid, str(info["control_url"]), str(log_path))


def stop_relays(home: Path) -> int:
    """Stop every running relay and PSTN gateway under the home (those the stack started and the
    relays' replacements)."""
    if "meeting" not in SERVICES:
        return 0
    from services.meeting.relay.files import read_ready, running_relays

    count = 0
    for region in MEETING_REGIONS:
        gateway = home.resolve() / "meeting" / region / "pstn" / "ready.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(read_ready(gateway)["pid"])
            if _alive(pid):
                count += 1
                terminate(pid)
        for ready in running_relays(home.resolve(), region):
            count += 1
            terminate(int(ready["pid"]))
    return count


def terminate(pid: int, timeout: float = 10.0) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(home: Path) -> int:
    """Stop every process of the stack; returns how many were running."""
    home = home.resolve()
    if not stack_file(home).exists():
        return stop_relays(home)
    running = 0
    for ep in read_stack(home).endpoints():
        if _alive(ep.pid):
            running += 1
            terminate(ep.pid)
    running += stop_relays(home)  # after the regions, so none of them replaces a stopped relay
    stack_file(home).unlink(missing_ok=True)
    return running


def restart_region(home: Path, service: str, region: str) -> Endpoint:
    """Start a region again on its old port (after a crash or a kill) and update stack.json."""
    home = home.resolve()
    stack = read_stack(home)
    old = stack.endpoint(service, region)
    terminate(old.pid, timeout=5.0)
    entry = launch_region(home, service, region, port=old.port, schema_prefix=stack.schema_prefix)
    stack.add(entry)
    write_stack(stack)
    return entry


def health(ep: Endpoint, timeout: float = 3.0) -> dict[str, Any]:
    """The region's /healthz answer, or the reason it gave none."""
    if not _alive(ep.pid):
        return {"ok": False, "reason": "process not running"}
    try:
        with httpx.Client(verify=str(ep.ca_file), timeout=timeout) as client:
            response = client.get(f"{ep.url}/healthz")
        body: dict[str, Any] = response.json()
        return {"ok": response.status_code == 200, **body}
    except (httpx.HTTPError, ValueError) as exc:
        return {"ok": False, "reason": str(exc)}
