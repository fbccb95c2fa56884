"""Locust in its own processes: one headless process, or a master and K workers on 127.0.0.1, or one
worker joining a master elsewhere.

Nothing here imports Locust or gevent: the processes run `python -m locust` with the locustfiles of
`scenarios/locust/`, so the caller (the CLI, a test) keeps its own asyncio and SSL untouched
(locust #2250). Their output goes to one directory: Locust's CSV files (`stats_*.csv`), the HTML
report, `stats.json`, the verdict and a log per process.

Locust runs in sessions of its own, so a signal meant for the caller does not reach it: while a run
lasts, SIGTERM and SIGINT end it through the code that stops every Locust process it started
(`stopping_on_signals`), whatever dispositions the caller inherited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = [
    ROOT / "scenarios" / "locust" / name for name in ("dm_device.py", "dm_admin.py", "meeting.py")
]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunPlan:
    scenario_file: Path
    out: Path
    users: int
    spawn_rate: float
    run_time_s: float
    classes: list[str]
    stop_timeout_s: float = 3.0
    workers: int = 0
    remote_workers: int = 0
    bind_host: str = "127.0.0.1"
    master_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.workers + self.remote_workers > 0


def _base() -> list[str]:
    return [sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in LOCUSTFILES)]


def master_command(plan: RunPlan, provision_file: Path, port: int) -> list[str]:
    out = plan.out
    command = [
        *_base(),
        "--headless",
        "--users",
        str(plan.users),
        "--spawn-rate",
        f"{plan.spawn_rate:g}",
        "--run-time",
        f"{max(1, round(plan.run_time_s))}s",
        "--stop-timeout",
        f"{plan.stop_timeout_s:g}",
        "--csv",
        str(out / "stats"),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--json-file",
        str(out / "stats"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--roomtrust-scenario",
        str(plan.scenario_file),
        "--roomtrust-provision",
        str(provision_file),
        "--roomtrust-out",
        str(out),
    ]
    if plan.distributed:
        command += [
            "--master",
            "--master-bind-host",
            plan.bind_host,
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(plan.workers + plan.remote_workers),
            "--expect-workers-max-wait",
            "120",
        ]
    return command + plan.classes


def worker_command(master_host: str, master_port: int) -> list[str]:
    return [*_base(), "--worker", "--master-host", master_host, "--master-port", str(master_port)]


def _start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """End one process this module started: SIGTERM (Locust writes its reports), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into KeyboardInterrupt while the block runs, so its `finally`
    clauses stop the Locust processes. Without this, SIGTERM would end the process at once, and
    SIGINT is ignored by any process a non-interactive shell started in the background."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its caller owns the signals then
        return

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class RunResult:
    exit_code: int
    out: Path
    logs: list[Path]


def run_locust(plan: RunPlan, provision_file: Path, grace_s: float = 90.0) -> RunResult:
    """Run the load to its end; the exit code is the master's (or the single process's)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    for pattern in ("stats*", "*.log", "report.html", "verdict.json"):
        for old in plan.out.glob(pattern):
            old.unlink()
    env = {"PYTHONUNBUFFERED": "1", **plan.extra_env}
    port = plan.master_port or free_port(plan.bind_host)
    master_log = plan.out / ("master.log" if plan.distributed else "locust.log")
    logs = [master_log]
    with stopping_on_signals():
        master = _start(master_command(plan, provision_file, port), master_log, env)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for index in range(plan.workers):
                log = plan.out / f"worker-{index + 1}.log"
                logs.append(log)
                workers.append(_start(worker_command("127.0.0.1", port), log, env))
            deadline = time.monotonic() + plan.run_time_s + plan.stop_timeout_s + grace_s
            while master.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                if any(w.poll() not in (None, 0) for w in workers) and master.poll() is None:
                    # a worker failed: the master would wait for it until the deadline
                    _stop(master)
            if master.poll() is None:
                _stop(master)
            code = master.wait()
            for worker in workers:  # the master tells them to quit; give them a moment
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(10)
        finally:
            for proc in [master, *workers]:
                _stop(proc)
        return RunResult(code, plan.out, logs)


def run_worker(master_host: str, master_port: int, log: Path) -> int:
    """Join a master elsewhere as one worker, until the master ends the run."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with stopping_on_signals():
        proc = _start(worker_command(master_host, master_port), log, {"PYTHONUNBUFFERED": "1"})
        try:
            return proc.wait()
        finally:
            _stop(proc)
