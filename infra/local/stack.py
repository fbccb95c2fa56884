"""Start, stop and inspect the local stack: one process per service region on 127.0.0.1 with TLS.

`start()` launches every region as its own process (own database, own CA under the stack's home),
waits until each has written its ready file, and writes `stack.json` with the URLs and CA bundles that
every other tool reads. The processes outlive the command; `stop()` ends them cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.common.settings import DM_REGIONS, MEETING_REGIONS

# service name -> (module run with `python -m`, its regions)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dm": ("services.dm.main", DM_REGIONS),
}
if (Path(__file__).resolve().parents[2] / "services" / "meeting" / "main.py").exists():
    SERVICES["meeting"] = ("services.meeting.main", MEETING_REGIONS)

STACK_FILE = "stack.json"
START_TIMEOUT = 60.0


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    service: str
    region: str
    url: str
    ca_file: Path
    pid: int


def stack_file(home: Path) -> Path:
    return home / STACK_FILE


def read_stack(home: Path) -> dict[str, Any]:
    path = stack_file(home)
    if not path.exists():
        raise StackError(f"no local stack at {home} (run `roomtrust up`)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def endpoints(stack: dict[str, Any]) -> list[Endpoint]:
    return [
        Endpoint(service, region, info["url"], Path(info["ca_file"]), info["pid"])
        for service, regions in stack["services"].items()
        for region, info in regions.items()
    ]


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


def _await_ready(launch: _Launch, deadline: float) -> dict[str, Any]:
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
    info = json.loads(launch.ready.read_text())
    return {
        "url": f"https://127.0.0.1:{info['port']}",
        "port": info["port"],
        "ca_file": str(launch.ready.parent / "ca" / "ca.pem"),
        "pid": launch.proc.pid,
        "module": SERVICES[launch.service][0],
        "log": str(launch.log),
    }


def launch_region(
    home: Path, service: str, region: str, port: int = 0, schema_prefix: str = ""
) -> dict[str, Any]:
    """Start one region process and wait for its ready file; returns its stack entry."""
    launch = _spawn(home, service, region, port, schema_prefix)
    return _await_ready(launch, time.monotonic() + START_TIMEOUT)


def start(
    home: Path, services: list[str] | None = None, schema_prefix: str | None = None
) -> dict[str, Any]:
    """Start the stack (or return the running one) and write stack.json.

    On PostgreSQL each region keeps its data in the schema `<schema_prefix><service>_<region>`;
    the prefix defaults to ROOMTRUST_SCHEMA_PREFIX, so two stacks can share one database."""
    if schema_prefix is None:
        schema_prefix = os.environ.get("ROOMTRUST_SCHEMA_PREFIX", "")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if stack_file(home).exists():
        running = read_stack(home)
        if all(_alive(ep.pid) for ep in endpoints(running)):
            return running
        stop(home)
    stack: dict[str, Any] = {"home": str(home), "schema_prefix": schema_prefix, "services": {}}
    launches = [
        _spawn(home, service, region, schema_prefix=schema_prefix)
        for service in services or list(SERVICES)
        for region in SERVICES[service][1]
    ]
    deadline = time.monotonic() + START_TIMEOUT
    try:
        for launch in launches:
            entry = _await_ready(launch, deadline)
            stack["services"].setdefault(launch.service, {})[launch.region] = entry
    except Exception:
        for launch in launches:
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        raise
    write_stack(home, stack)
    return stack


def write_stack(home: Path, stack: dict[str, Any]) -> None:
    tmp = stack_file(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(stack, indent=2))
    tmp.replace(stack_file(home))


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
        return 0
    running = 0
    for ep in endpoints(read_stack(home)):
        if _alive(ep.pid):
            running += 1
            terminate(ep.pid)
    stack_file(home).unlink(missing_ok=True)
    return running


def restart_region(home: Path, service: str, region: str) -> dict[str, Any]:
    """Start a region again on its old port (after a crash or a kill) and update stack.json."""
    home = home.resolve()
    stack = read_stack(home)
    old = stack["services"][service][region]
    terminate(old["pid"], timeout=5.0)
    entry = launch_region(
        home, service, region, port=old["port"], schema_prefix=stack.get("schema_prefix", "")
    )
    stack["services"][service][region] = entry
    write_stack(home, stack)
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
