"""Checks of features/tls.feature (DM-11, IN-02, MT-06 signaling, MT-10) over the reports of the
stdlib TLS probe (`roomtrust.comply.tlsprobe`): one report per endpoint, one result per handshake
attempted (a protocol version, or a TLS 1.2 cipher family)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from roomtrust.comply.checks import check, require, selected
from roomtrust.comply.tlsprobe import ACCEPTED, REFUSED, ProbeReport

OLD_PROTOCOLS = ("TLS 1.0", "TLS 1.1")
STRONG_SUITE = "TLS 1.2 ECDHE AEAD"


def _accepted(probes: Sequence[ProbeReport], labels: Collection[str]) -> list[str]:
    return [
        f"{p.name}: {r.label} accepted ({r.cipher})"
        for p in probes
        for r in p.results
        if r.label in labels and r.outcome == ACCEPTED
    ]


@check("tls")
def no_old_protocols(probes: Sequence[ProbeReport]) -> None:
    """Every endpoint was asked for TLS 1.0 and TLS 1.1 and refused both."""
    selected(probes, "probe results")
    untested = [
        f"{p.name}: {label} {next((r.outcome for r in p.results if r.label == label), 'not tried')}"
        for p in probes
        for label in OLD_PROTOCOLS
        if not any(r.label == label and r.outcome in {ACCEPTED, REFUSED} for r in p.results)
    ]
    require(not untested, f"not probed, so not shown refused: {untested}")
    offenders = _accepted(probes, OLD_PROTOCOLS)
    require(not offenders, f"{offenders}")


@check("tls")
def no_weak_suites(probes: Sequence[ProbeReport]) -> None:
    """No endpoint accepts a TLS 1.2 cipher family without ECDHE and AEAD (and some were tried)."""
    selected(probes, "probe results")
    weak = {r.label for p in probes for r in p.results if r.weak and r.version == "TLSv1.2"}
    require(weak, "no weak TLS 1.2 family was probed")
    offenders = _accepted(probes, weak)
    require(not offenders, f"{offenders}")


@check("tls")
def strong_suite(probes: Sequence[ProbeReport]) -> None:
    """Every endpoint negotiates TLS 1.2 with an ECDHE AEAD suite."""
    selected(probes, "probe results")
    refused = []
    for p in probes:
        tried = [r for r in p.results if r.label == STRONG_SUITE]
        if not tried:
            refused.append(f"{p.name}: {STRONG_SUITE} not tried")
        elif tried[0].outcome != ACCEPTED:
            refused.append(f"{p.name}: {tried[0].detail or tried[0].outcome}")
    require(not refused, f"{refused}")


@check("tls")
def passes_policy(probes: Sequence[ProbeReport]) -> None:
    """Every endpoint passes the TLS policy: no finding of the probe."""
    selected(probes, "probe results")
    findings = {p.name: p.findings() for p in probes if p.findings()}
    require(not findings, f"{findings}")
