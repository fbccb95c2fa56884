"""`roomtrust comply` end to end against dedicated fixture targets (no stack needed): a region
whose endpoints are strong passes the TLS claims, one that accepts TLS 1.0 fails them, a scenario
that selects nothing fails its claim, and a claim without scenario stays UNCHECKED."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roomtrust.cli import app
from roomtrust.comply.capture import can_capture
from roomtrust.comply.controls import TlsControlServer
from roomtrust.comply.runner import ComplyRun, run_comply
from roomtrust.comply.targets import parse_target
from roomtrust.comply.verdicts import FAIL, NA, PASS, UNCHECKED

TargetFile = Callable[[Path, dict[str, TlsControlServer]], Path]


def by_id(run: ComplyRun) -> dict[str, str]:
    return {v.id: v.verdict for v in run.verdicts}


def test_a_strong_region_passes_the_tls_claims(strong_run: ComplyRun) -> None:
    verdicts = by_id(strong_run)
    assert {verdicts[c] for c in ("DM-11", "IN-02", "MT-06", "MT-10")} == {PASS}


def test_a_deployed_region_marks_server_side_scenarios_not_applicable(
    strong_run: ComplyRun,
) -> None:
    dm01 = next(v for v in strong_run.verdicts if v.id == "DM-01")
    assert dm01.verdict == NA
    assert "server-side clock, process or store control" in dm01.reasons[0]


def test_the_report_folder_has_every_format(strong_run: ComplyRun) -> None:
    out = strong_run.report.parent
    document = json.loads((out / "compliance.json").read_text())
    assert {c["id"] for c in document["claims"]} == {v.id for v in strong_run.verdicts}
    features = json.loads((out / "cucumber.json").read_text())
    assert any(f["uri"].endswith("tls.feature") for f in features)
    suites = ET.parse(out / "junit.xml").getroot()
    assert suites.tag == "testsuites" and int(suites[0].get("tests", "0")) >= 3
    probe = next(out.glob("evidence/region-eu/*/tls-probe.json"))
    assert json.loads(probe.read_text())[0]["verdict"] == "strong"


def test_a_region_that_accepts_tls10_fails_through_the_cli(
    tmp_path: Path, target_file: TargetFile
) -> None:
    with TlsControlServer.weak(tmp_path / "weak") as weak:
        spec = target_file(tmp_path / "target.json", {"dm": weak})
        result = CliRunner().invoke(
            app, ["comply", "--target", str(spec), "--out", str(tmp_path / "report")]
        )
    assert result.exit_code == 1, result.output
    document = json.loads((tmp_path / "report" / "compliance.json").read_text())
    claims = {c["id"]: c for c in document["claims"]}
    assert claims["DM-11"]["verdict"] == FAIL
    assert "TLS 1.0" in " ".join(claims["DM-11"]["reasons"])
    assert claims["IN-02"]["verdict"] == FAIL


MINI_FEATURE = """\
Feature: Mini
  @live @url @DM-11
  Scenario: The probe over an empty selection
    Given the "nosuch" endpoints of the target
    When the TLS probe runs against each of them
    Then every endpoint passes the TLS policy

  @live @url @MT-08
  Scenario: The probe over every endpoint
    Given every endpoint of the target
    When the TLS probe runs against each of them
    Then every endpoint passes the TLS policy
"""

MINI_CLAIMS = """\
| ID | claim | checked at |
|---|---|---|
| DM-11 | TLS 1.2 or higher. | runtime |
| MT-08 | PSTN leg is marked. | runtime |
| IN-05 | Log stores keep 180 days. | infra |
"""


def test_a_selection_of_nothing_fails_and_an_unchecked_claim_is_never_passed(
    tmp_path: Path, target_file: TargetFile
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    (features / "mini.feature").write_text(MINI_FEATURE)
    (features / "test_mini.py").write_text(
        textwrap.dedent("""\
            from pytest_bdd import scenarios
            from features.steps.tls_steps import *  # noqa: F403
            scenarios("mini.feature")
        """)
    )
    (tmp_path / "claims.md").write_text(MINI_CLAIMS)
    (tmp_path / "UNCHECKED.md").write_text("- IN-05: the graph is not in yet\n")
    with TlsControlServer.strong(tmp_path / "tls") as server:
        spec = target_file(tmp_path / "target.json", {"dm": server})
        run = run_comply(
            [parse_target(str(spec))],
            out=tmp_path / "report",
            features=features,
            claims_file=tmp_path / "claims.md",
            unchecked_file=tmp_path / "UNCHECKED.md",
            cwd=tmp_path,
            allow_unchecked=True,
        )
    verdicts = {v.id: v for v in run.verdicts}
    assert verdicts["MT-08"].verdict == PASS
    assert verdicts["DM-11"].verdict == FAIL
    assert "selected no" in verdicts["DM-11"].reasons[0]
    assert verdicts["IN-05"].verdict == UNCHECKED
    assert "the graph is not in yet" in verdicts["IN-05"].reasons[0]
    assert run.exit_code == 1


def test_list_prints_each_claim_with_its_scenarios() -> None:
    result = CliRunner().invoke(app, ["comply", "--list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("DM-11")))
    assert "tls.feature:" in lines[at + 1]
    assert any(line.startswith("DM-01") for line in lines)


def test_a_bad_target_is_refused_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "target.json"
    bad.write_text(json.dumps({"kind": "url", "endpoints": [{"service": "dm", "url": "x"}]}))
    result = CliRunner().invoke(app, ["comply", "--target", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "endpoints[0] lacks region" in result.output


WIRE_FEATURE = """\
Feature: Wire
  @live @url @MT-18
  Scenario: Chat text sent in the clear is caught
    Given a marker sent in the clear over UDP
    Then the capture holds no marker in the clear

  @live @url @MT-06
  Scenario: The same text inside TLS is not seen
    Given a marker sent inside TLS
    Then the capture holds no marker in the clear
"""

WIRE_STEPS = """\
import secrets
from pytest_bdd import given, then
from roomtrust.comply.capture import assert_no_marker_in_clear
from roomtrust.comply.controls import TlsControlServer, send_over_tls, send_plaintext_udp
from roomtrust.comply.fixtures import evidence, wire  # noqa: F401
from pytest_bdd import scenarios

scenarios("wire.feature")


@given("a marker sent in the clear over UDP", target_fixture="marker")
def _clear(wire):
    marker = b"RT-" + secrets.token_hex(8).encode()
    send_plaintext_udp(40999, marker)
    return marker


@given("a marker sent inside TLS", target_fixture="marker")
def _inside(wire, tmp_path):
    marker = b"RT-" + secrets.token_hex(8).encode()
    with TlsControlServer.strong(tmp_path) as server:
        send_over_tls(server, marker)
    return marker


@then("the capture holds no marker in the clear")
def _no_marker(wire, marker, evidence):
    assert_no_marker_in_clear(wire, marker, evidence)
"""

WIRE_CLAIMS = """\
| ID | claim | checked at |
|---|---|---|
| MT-06 | Media and signaling encrypted. | runtime |
| MT-18 | Chat never leaves TLS. | runtime |
"""


@pytest.mark.skipif(not can_capture(), reason="capturing on lo needs root")
def test_a_plaintext_marker_fails_the_wire_check_and_each_scenario_keeps_a_pcap(
    tmp_path: Path, target_file: TargetFile
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    (features / "wire.feature").write_text(WIRE_FEATURE)
    (features / "test_wire.py").write_text(WIRE_STEPS)
    (tmp_path / "claims.md").write_text(WIRE_CLAIMS)
    with TlsControlServer.strong(tmp_path / "tls") as server:
        spec = target_file(tmp_path / "target.json", {"dm": server})
        run = run_comply(
            [parse_target(str(spec))],
            out=tmp_path / "report",
            features=features,
            claims_file=tmp_path / "claims.md",
            unchecked_file=tmp_path / "UNCHECKED.md",
            cwd=tmp_path,
        )
    verdicts = {v.id: v for v in run.verdicts}
    assert verdicts["MT-18"].verdict == FAIL
    assert "in the clear" in verdicts["MT-18"].reasons[0]
    assert verdicts["MT-06"].verdict == PASS
    for claim in ("MT-06", "MT-18"):
        assert any(p.endswith(".pcap") for p in verdicts[claim].evidence), claim
        assert any(p.endswith("wire-summary.json") for p in verdicts[claim].evidence), claim
