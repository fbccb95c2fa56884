"""The interop gateway's driver (`server.py`, MT-07): its dispatch of the cores' actions is
exhaustive, so an action it does not handle fails mypy rather than being dropped at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "services" / "meeting" / "interop" / "server.py"
HANDLER = "            case Decision():\n"


def mypy(source: str, directory: Path) -> subprocess.CompletedProcess[str]:
    copy = directory / "interop_server_copy.py"
    copy.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", str(copy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_removing_a_handler_from_the_dispatch_fails_mypy(tmp_path: Path) -> None:
    source = SERVER.read_text()
    assert source.count(HANDLER) == 1
    control = mypy(source, tmp_path)
    assert control.returncode == 0, control.stdout  # the copy as it is type-checks
    start = source.index(HANDLER)
    end = source.index("            case _:", start)
    broken = mypy(source[:start] + source[end:], tmp_path)
    assert broken.returncode == 1
    assert "assert_never" in broken.stdout and '"Decision"' in broken.stdout
