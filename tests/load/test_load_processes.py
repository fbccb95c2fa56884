"""Stopping `roomtrust load`: SIGTERM or SIGINT to it stops the processes it started in sessions of
their own, even when it was started with SIGINT ignored (as a background job of a script is)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a run: one long child in its own session (as Locust is), stopped in `finally`.
RUN = """
import contextlib, sys, time
from pathlib import Path
from load import processes
guard = processes.stopping_on_signals() if sys.argv[2] == "guarded" else contextlib.nullcontext()
with guard:
    child = processes._start(["sleep", "60"], Path(sys.argv[1]), {})
    print(child.pid, flush=True)
    try:
        time.sleep(60)
    finally:
        processes._stop(child)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run(tmp_path: Path, mode: str, sig: signal.Signals) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUN, str(tmp_path / "child.log"), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert runner.stdout is not None
    child = int(runner.stdout.readline())
    time.sleep(0.2)
    runner.send_signal(sig)
    return runner, child


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_run_stops_the_processes_it_started(
    tmp_path: Path, sig: signal.Signals
) -> None:
    runner, child = _run(tmp_path, "guarded", sig)
    assert runner.wait(20) != 0  # interrupted, not finished
    assert not _alive(child)


def test_without_the_guard_the_child_outlives_a_terminated_run(tmp_path: Path) -> None:
    runner, child = _run(tmp_path, "plain", signal.SIGTERM)
    try:
        runner.wait(20)
        assert _alive(child)  # what the guard prevents: an orphan left running
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
