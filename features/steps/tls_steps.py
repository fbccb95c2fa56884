"""Steps of features/tls.feature: the stdlib TLS probe against every endpoint of the target
(DM-11, IN-02, MT-06 signaling, MT-10)."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, parsers, then, when

from roomtrust.comply.evidence import Evidence, nonempty
from roomtrust.comply.fixtures import comply_target, evidence
from roomtrust.comply.targets import Target, TlsEndpoint
from roomtrust.comply.tlsprobe import ACCEPTED, ProbeReport, probe

FIXTURES = (comply_target, evidence)  # made visible to the scenarios that import these steps


@given(parsers.parse('the "{service}" endpoints of the target'), target_fixture="endpoints")
def _service_endpoints(comply_target: Target, service: str) -> list[TlsEndpoint]:
    return list(nonempty(comply_target.endpoints(service), f'"{service}" endpoints'))


@given("every endpoint of the target", target_fixture="endpoints")
def _all_endpoints(comply_target: Target) -> list[TlsEndpoint]:
    return list(nonempty(comply_target.endpoints(), "endpoints"))


@when("the TLS probe runs against each of them", target_fixture="probes")
def _run_probe(endpoints: list[TlsEndpoint], evidence: Evidence) -> list[ProbeReport]:
    reports = [probe(e.host, e.port, e.name) for e in endpoints]
    evidence.write_json("tls-probe.json", [r.to_dict() for r in reports])
    return reports


def _offenders(probes: list[ProbeReport], labels: set[str]) -> list[str]:
    nonempty(probes, "probe results")
    return [
        f"{p.name}: {r.label} accepted ({r.cipher})"
        for p in probes
        for r in p.results
        if r.label in labels and r.outcome == ACCEPTED
    ]


@then("no endpoint accepts TLS 1.0 or TLS 1.1")
def _no_old_protocols(probes: list[ProbeReport]) -> None:
    untested = [
        f"{p.name}: {r.label} {r.outcome}"
        for p in probes
        for r in p.results
        if r.label in {"TLS 1.0", "TLS 1.1"} and r.outcome not in {ACCEPTED, "refused"}
    ]
    assert not untested, f"not probed, so not shown refused: {untested}"
    offenders = _offenders(probes, {"TLS 1.0", "TLS 1.1"})
    assert not offenders, offenders


@then("no endpoint accepts a TLS 1.2 suite without ECDHE and AEAD")
def _no_weak_suites(probes: list[ProbeReport]) -> None:
    weak = {r.label for p in probes for r in p.results if r.weak and r.version == "TLSv1.2"}
    assert weak, "no weak TLS 1.2 family was probed"
    offenders = _offenders(probes, weak)
    assert not offenders, offenders


@then("every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite")
def _strong_suite(probes: list[ProbeReport]) -> None:
    nonempty(probes, "probe results")
    refused = [
        f"{p.name}: {p.result('TLS 1.2 ECDHE AEAD').detail}"
        for p in probes
        if p.result("TLS 1.2 ECDHE AEAD").outcome != ACCEPTED
    ]
    assert not refused, refused


@then("every endpoint passes the TLS policy")
def _policy(probes: list[ProbeReport]) -> None:
    nonempty(probes, "probe results")
    findings: dict[str, Any] = {p.name: p.findings() for p in probes if p.findings()}
    assert not findings, findings
