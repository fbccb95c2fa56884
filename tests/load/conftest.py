"""Fixtures for the load tests: the two regions a load run talks to (DM us, meeting na) as live
processes in a temporary home, with the stack.json that `roomtrust load` reads.

Only those two start, at once (not the whole stack): the load tests share two cores with the load
itself. Locust never runs in this process; the tests start `python -m load` (`roomtrust load`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocol.stack import Stack, write_stack
from roomtrust.stack import launcher

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def load_stack(tmp_path_factory: pytest.TempPathFactory, schema_prefix: str) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("load-stack").resolve()
    stack = Stack(home, schema_prefix)

    def launch(service: str, region: str) -> None:
        stack.add(launcher.launch_region(home, service, region, schema_prefix=schema_prefix))

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(launch, ("dm", "meeting"), ("us", "na")))
        write_stack(stack)
        yield stack
    finally:
        for entry in stack.endpoints():
            launcher.terminate(entry.pid)


def _roomtrust_load(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "load", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def roomtrust_load() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`roomtrust load ARGS` in its own process (`python -m load` is the same Typer app)."""
    return _roomtrust_load
