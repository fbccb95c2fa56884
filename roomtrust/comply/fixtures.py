"""Fixtures for compliance steps: the target under check, the scenario's evidence folder and a
loopback wire capture saved as a pcap. Step modules import them (`from roomtrust.comply.fixtures
import comply_target, evidence, wire`).

Under `roomtrust comply` they serve the run's target and write into the report's evidence folder;
in a plain pytest run the target is the session's `live_stack` and evidence goes to `tmp_path`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.stack import Stack
from roomtrust.comply.capture import WireCapture, can_capture
from roomtrust.comply.evidence import Evidence, slug
from roomtrust.comply.plugin import comply_session
from roomtrust.comply.targets import GraphTarget, LocalTarget, SimTarget, Target


@pytest.fixture
def comply_target(request: pytest.FixtureRequest) -> Target:
    """The target this scenario checks."""
    session = comply_session(request.config)
    if session is not None:
        return session.target
    keywords = request.node.keywords
    if "graph" in keywords and "live" not in keywords:
        return GraphTarget("graph", "graph")
    if "sim" in keywords and "live" not in keywords:
        return SimTarget("sim", "sim")
    stack: Stack = request.getfixturevalue("live_stack")
    return LocalTarget(stack.home, stack)


@pytest.fixture
def evidence(request: pytest.FixtureRequest, tmp_path: Path) -> Evidence:
    """The scenario's evidence folder (linked from the compliance report)."""
    session = comply_session(request.config)
    if session is not None:
        return session.evidence_for(request.node.nodeid)
    return Evidence(tmp_path / "evidence")


@pytest.fixture
def wire(request: pytest.FixtureRequest, evidence: Evidence) -> Iterator[WireCapture]:
    """A capture of loopback TCP/UDP for the whole scenario, saved as `<scenario>.pcap`."""
    if not can_capture():
        pytest.skip("capturing on lo needs CAP_NET_RAW (run as root)")
    capture = WireCapture().start()
    try:
        yield capture
    finally:
        capture.stop()
        capture.save(evidence.path(f"{slug(request.node.nodeid)}.pcap"))
