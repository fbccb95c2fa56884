"""Storage emulators the tests start: Azurite, the Azure Blob Storage emulator (npm `azurite`), and
moto's server, an S3 (and more) emulator (`moto[server]`, a dev dependency).

`tools/node/` pins Azurite (package.json, package-lock.json); `npm ci` there installs it, as
`.ci/run` does. `azurite(host)` starts its blob service on a free port of `host`, in memory, and
stops it on exit; `azurite_missing()` says why it cannot start here, or None. `moto_s3(host)` and
`moto_missing()` do the same for moto's server.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_TOOLS = Path(__file__).resolve().parents[1] / "tools" / "node"
AZURITE_BLOB = NODE_TOOLS / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account (documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(r"listens on https?://[^:\s]+:(\d+)")
_MOTO_LISTENING = re.compile(r"Running on https?://[^:\s]+:(\d+)")
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
# moto accepts any credentials; these only make boto3 sign its requests
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class AzuriteBlob:
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )


def azurite_missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed (Azurite runs on it)"
    if not AZURITE_BLOB.exists():
        return f"Azurite is not installed: run `npm ci` in {NODE_TOOLS}"
    return None


@contextlib.contextmanager
def azurite(host: str = "127.0.0.1") -> Iterator[AzuriteBlob]:
    """Azurite's blob service on a free port of `host`, kept in memory; stopped on exit."""
    reason = azurite_missing()
    if reason:
        raise RuntimeError(reason)
    argv = [
        str(AZURITE_BLOB),
        "--blobHost",
        host,
        "--blobPort",
        "0",
        "--inMemoryPersistence",
        "--extentMemoryLimit",
        "256",
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]
    with _serving(argv, _LISTENING, "Azurite") as port:
        yield AzuriteBlob(host, port)


@dataclass(frozen=True)
class MotoServer:
    host: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, service: str = "s3") -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=MOTO_CREDENTIALS["AWS_DEFAULT_REGION"],
        )


def moto_missing() -> str | None:
    if not MOTO_SERVER.exists():
        return f"moto's server is not installed ({MOTO_SERVER}): `uv sync` installs moto[server]"
    return None


@contextlib.contextmanager
def moto_s3(host: str = "127.0.0.1") -> Iterator[MotoServer]:
    """moto's server on a free port of `host`, state in memory; stopped on exit."""
    reason = moto_missing()
    if reason:
        raise RuntimeError(reason)
    with _serving([str(MOTO_SERVER), "-H", host, "-p", "0"], _MOTO_LISTENING, "moto") as port:
        yield MotoServer(host, port)


@contextlib.contextmanager
def _serving(argv: list[str], listening: re.Pattern[str], name: str) -> Iterator[int]:
    """Start an emulator, read its output until it names the port it listens on, and stop it on
    exit."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        seen: list[str] = []
        port = None
        while port is None:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} ended before listening: {''.join(seen)[-2000:]}")
            seen.append(line)
            if match := listening.search(line):
                port = int(match.group(1))
            elif time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within {START_TIMEOUT} s")
        # keep reading what it prints, so a full pipe never stalls it
        threading.Thread(target=process.stdout.read, name=f"{name}-output", daemon=True).start()
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
