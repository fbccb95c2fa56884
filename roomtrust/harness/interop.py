"""Start and stop a region's interop gateway as its own process (for tests and features).

The local stack does not start the gateway; a scenario that checks it starts one against the
meeting region already running in the stack's home, waits for its ready file, and stops it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.meeting.interop.server import interop_directory, ready_file

START_TIMEOUT = 20.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host(self) -> str:
        return str(self.ready["host"])

    @property
    def sip_port(self) -> int:
        return int(self.ready["sip_port"])

    @property
    def h323_port(self) -> int:
        return int(self.ready["h323_port"])

    @property
    def ca_file(self) -> Path:
        return Path(self.ready["ca_file"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def start_gateway(home: Path, region: str) -> GatewayProcess:
    """Run `python -m services.meeting.interop` for the region; returns once it is ready."""
    home = home.resolve()
    directory = interop_directory(home, region)
    directory.mkdir(parents=True, exist_ok=True)
    ready = ready_file(home, region)
    ready.unlink(missing_ok=True)
    log_file = directory / "gateway.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.meeting.interop",
                "--region",
                region,
                "--home",
                str(home),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the interop gateway exited:\n{log_file.read_text()}")
        if ready.exists():
            info: dict[str, Any] = json.loads(ready.read_text())
            if info.get("pid") == process.pid:
                return GatewayProcess(process, info, log_file)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the interop gateway was not ready in {START_TIMEOUT} s")
