"""Steps of features/tls.feature: the stdlib TLS probe against every endpoint of the target
(DM-11, IN-02, MT-06 signaling, MT-10)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from roomtrust.comply.checks import tls as checks
from roomtrust.comply.evidence import Evidence, nonempty
from roomtrust.comply.fixtures import comply_target, evidence
from roomtrust.comply.targets import Target, TlsEndpoint
from roomtrust.comply.tlsprobe import ProbeReport, probe

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


@then("no endpoint accepts TLS 1.0 or TLS 1.1")
def _no_old_protocols(probes: list[ProbeReport]) -> None:
    checks.no_old_protocols(probes)


@then("no endpoint accepts a TLS 1.2 suite without ECDHE and AEAD")
def _no_weak_suites(probes: list[ProbeReport]) -> None:
    checks.no_weak_suites(probes)


@then("every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite")
def _strong_suite(probes: list[ProbeReport]) -> None:
    checks.strong_suite(probes)


@then("every endpoint passes the TLS policy")
def _policy(probes: list[ProbeReport]) -> None:
    checks.passes_policy(probes)
