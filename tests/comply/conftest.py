"""Fixtures of the compliance tests: fixture targets and one report built from them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roomtrust.comply.controls import TlsControlServer
from roomtrust.comply.runner import ComplyRun, run_comply
from roomtrust.comply.targets import parse_target


def write_target_file(path: Path, servers: dict[str, TlsControlServer]) -> Path:
    """A url target file (a deployed region) whose endpoints are the given control servers."""
    endpoints = [
        {"service": service, "region": "eu", "url": s.url, "ca_file": str(s.ca_file)}
        for service, s in servers.items()
    ]
    path.write_text(json.dumps({"kind": "url", "name": "region-eu", "endpoints": endpoints}))
    return path


@pytest.fixture(scope="session")
def strong_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComplyRun]:
    """The real features against a deployed-region target whose endpoints use the services' TLS."""
    tmp = tmp_path_factory.mktemp("strong")
    with TlsControlServer.strong(tmp / "dm") as dm, TlsControlServer.strong(tmp / "mt") as mt:
        spec = write_target_file(tmp / "target.json", {"dm": dm, "meeting": mt})
        yield run_comply([parse_target(str(spec))], out=tmp / "report")


@pytest.fixture
def target_file() -> Callable[[Path, dict[str, TlsControlServer]], Path]:
    return write_target_file
