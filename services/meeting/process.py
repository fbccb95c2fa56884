"""What the meeting region's side processes (relay, PSTN gateway, interop gateway) read at start.

Like the region process (services/common/runtime.py), each reads the ROOMTRUST_* settings and
refuses unknown or bad ones, and a ROOMTRUST_REGION other than its `--region`, with a one-line
reason and exit code 2. From the settings it takes its state directory, listen host and port, the
region CA (the mounted secret files, else the one under the region's directory) and the region's
service tokens (mounted secret files, else those under the region's directory).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from protocol.signaling import PATH
from protocol.tls import client_context, harden
from services.common.ca import RegionCA
from services.common.runtime import load_ca, read_secret
from services.common.settings import Settings, SettingsError, load_settings
from services.meeting.relay.files import region_directory, use_token_files

ANY_ADDRESS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class ProcessStart:
    """One side process's start: its settings, state directory and the region's CA."""

    settings: Settings
    region: str
    home: Path
    ca: RegionCA
    ca_file: Path

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def advertised(self) -> str:
        """The address other services reach this process on."""
        return advertised_host(self.settings)

    def port(self, given: int | None) -> int:
        return given if given is not None else self.settings.port


def advertised_host(settings: Settings) -> str:
    if settings.advertise_host:
        return settings.advertise_host
    if settings.host not in ANY_ADDRESS:
        return settings.host
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def public_names(settings: Settings) -> list[str]:
    """The names a gateway's server certificate carries besides its address (the public hosts)."""
    return list(settings.public_hosts)


def start_process(prog: str, region: str, home: Path | None) -> ProcessStart:
    """The settings of one side process of meeting region `region`; bad ones end it (exit 2)."""
    try:
        settings = load_settings()
        if settings.region is not None and settings.region != region:
            raise SettingsError(
                f"ROOMTRUST_REGION is {settings.region!r} but --region is {region!r}"
            )
        home = (home if home is not None else settings.home).resolve()
        for setting in ("relay_token_file", "pstn_token_file", "interop_token_file"):
            path = getattr(settings, setting)
            if path is not None:
                read_secret(path, setting)  # a missing secret is refused now, not at first use
        use_token_files(
            settings.relay_token_file, settings.pstn_token_file, settings.interop_token_file
        )
        ca_dir = region_directory(home, region) / "ca"
        ca = load_ca(settings, ca_dir, f"meeting-{region}")
        ca_file = settings.ca_cert_file or ca_dir / "ca.pem"
    except SettingsError as exc:
        refuse(prog, f"bad settings: {exc}")
    except OSError as exc:
        refuse(prog, f"cannot start: {exc}")
    return ProcessStart(settings, region, home, ca, ca_file)


def refuse(prog: str, reason: str) -> NoReturn:
    print(f"{prog}: {reason}", file=sys.stderr)
    raise SystemExit(2)


def region_signaling(home: Path, region: str, url: str | None) -> tuple[str, ssl.SSLContext]:
    """Where a gateway signs in: `url` (the region's public signaling, whose certificate a public
    CA signs: the system's CAs are trusted), else the region process under the same state
    directory, on loopback, trusted by the region CA."""
    if url:
        return url, harden(ssl.create_default_context())
    directory = region_directory(home, region)
    port = json.loads((directory / "ready.json").read_text())["port"]
    return f"wss://127.0.0.1:{port}{PATH}", client_context(directory / "ca" / "ca.pem")
