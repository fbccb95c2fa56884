"""Signaling carries out every action of the conference session: its dispatch is an exhaustive
`match` ending in `assert_never`, so mypy fails on a copy of the module that drops one handler
(and passes on an intact copy, the negative control)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIGNALING = ROOT / "services" / "meeting" / "api" / "signaling.py"
HANDLER = re.compile(
    r"\n( +)case CloseLeg\(leg_id=leg_id\):\n\1    await self\.store\.close_leg\(leg_id\)"
)


def test_dropping_an_action_handler_fails_mypy(tmp_path: Path) -> None:
    source = SIGNALING.read_text()
    assert HANDLER.search(source), "the CloseLeg handler moved; update this test"
    # names of their own, so mypy's cache never answers for an earlier run's copies
    run = secrets.token_hex(4)
    intact, broken = tmp_path / f"intact_{run}.py", tmp_path / f"broken_{run}.py"
    intact.write_text(source)
    broken.write_text(HANDLER.sub("", source, count=1))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            str(intact),
            str(broken),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors, result.stdout + result.stderr
    assert all(line.startswith(str(broken)) for line in errors), errors
    assert any('"CloseLeg"' in line and "assert_never" in line for line in errors), errors
