"""Where a relay keeps its files, and the service tokens a meeting region shares with its relays
and its PSTN gateway.

Relays of region R live under `<home>/meeting/R/relays/<name>/` (ready file, TLS certificate). The
control token is one file per region, `<home>/meeting/R/relay-control.token` (mode 0600), made by
whichever of the meeting region or a relay needs it first. The PSTN gateway's token
(`pstn-gateway.token`) and the interop gateway's token (`interop-gateway.token`) are made and read
the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

READY_FILE = "ready.json"
TOKEN_FILE = "relay-control.token"
PSTN_TOKEN_FILE = "pstn-gateway.token"
INTEROP_TOKEN_FILE = "interop-gateway.token"


# token file name -> the mounted secret this process reads it from instead (use_token_files)
_SECRET_FILES: dict[str, Path] = {}


def use_token_files(
    relay: Path | None = None, pstn: Path | None = None, interop: Path | None = None
) -> None:
    """Read the region's service tokens from these files (mounted secrets) from now on; a token
    given no file is still made and read under the state directory."""
    _SECRET_FILES.clear()
    for name, path in ((TOKEN_FILE, relay), (PSTN_TOKEN_FILE, pstn), (INTEROP_TOKEN_FILE, interop)):
        if path is not None:
            _SECRET_FILES[name] = path


def region_directory(home: Path, region: str) -> Path:
    return home / "meeting" / region


def relays_directory(home: Path, region: str) -> Path:
    return region_directory(home, region) / "relays"


def relay_directory(home: Path, region: str, name: str) -> Path:
    return relays_directory(home, region) / name


def ready_file(home: Path, region: str, name: str) -> Path:
    return relay_directory(home, region, name) / READY_FILE


def read_ready(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def running_relays(home: Path, region: str) -> list[dict[str, Any]]:
    """Ready files of the region's relays whose process is alive, by name."""
    found = []
    for path in sorted(relays_directory(home, region).glob(f"*/{READY_FILE}")):
        with contextlib.suppress(OSError, ValueError):
            info = read_ready(path)
            if _alive(int(info["pid"])):
                found.append(info)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def control_token(home: Path, region: str) -> str:
    """The region's relay control token, made (atomically, owner-only) if there is none yet."""
    return service_token(home, region, TOKEN_FILE)


def pstn_token(home: Path, region: str) -> str:
    """The token the region's PSTN gateway presents to signaling and its trunk presents to it."""
    return service_token(home, region, PSTN_TOKEN_FILE)


def interop_token(home: Path, region: str) -> str:
    """The token the region's interop gateway for third-party SIP and H.323 systems presents to
    signaling (MT-07)."""
    return service_token(home, region, INTEROP_TOKEN_FILE)


def service_token(home: Path, region: str, file_name: str) -> str:
    """A region service token in `<home>/meeting/<region>/<file_name>`, made if absent, or the
    mounted secret file set for it (never made: a missing one is an error)."""
    secret = _SECRET_FILES.get(file_name)
    if secret is not None:
        token = secret.read_text().strip()
        if not token:
            raise RuntimeError(f"{secret} is empty")
        return token
    directory = region_directory(home, region)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name
    if not path.exists():
        tmp = directory / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # fails if another process made it first; theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    for _ in range(50):
        token = path.read_text().strip()
        if token:
            return token
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty")
