"""Negative controls of the `tls` checks (roomtrust/comply/checks/tls.py) over TLS probe reports:
an endpoint that accepts TLS 1.0 or a CBC suite, refuses the strong suite, or was not asked at
all. (tests/comply/test_comply_runs.py runs the same steps against a weak TLS server.)"""

from __future__ import annotations

import dataclasses

import pytest

from roomtrust.comply.checks import tls
from roomtrust.comply.negative import Case, Controls, all_cases
from roomtrust.comply.tlsprobe import (
    ACCEPTED,
    ERROR,
    NOT_OFFERED,
    REFUSED,
    AttemptResult,
    ProbeReport,
)

AEAD = "ECDHE-RSA-AES128-GCM-SHA256"


def attempts(**outcomes: str) -> list[AttemptResult]:
    """The probe's attempts on a strong endpoint; `outcomes` (label with `_` for spaces and `x`
    for dots, e.g. TLS_1x0) change what an attempt got."""
    plan = [
        ("TLS 1.0", "TLSv1", True, REFUSED),
        ("TLS 1.1", "TLSv1.1", True, REFUSED),
        ("TLS 1.2 ECDHE AEAD", "TLSv1.2", False, ACCEPTED),
        ("TLS 1.2 CBC (no AEAD)", "TLSv1.2", True, REFUSED),
        ("TLS 1.3", "TLSv1.3", False, ACCEPTED),
    ]
    found = []
    for label, version, weak, outcome in plan:
        got = outcomes.get(label.split(" (")[0].replace(" ", "_").replace(".", "x"), outcome)
        cipher = AEAD if got == ACCEPTED else None
        found.append(AttemptResult(label, version, weak, got, cipher))
    return found


def report(name: str = "dm-us", **outcomes: str) -> ProbeReport:
    return ProbeReport("127.0.0.1", 8443, name, attempts(**outcomes))


def without(label: str) -> ProbeReport:
    good = report()
    return dataclasses.replace(good, results=[r for r in good.results if r.label != label])


STRONG = [report(), report("meeting-sa")]

CONTROLS: list[Controls] = [
    Controls(
        tls.no_old_protocols,
        {"probes": STRONG},
        {
            "tls-1.0": ({"probes": [report(TLS_1x0=ACCEPTED)]}, "dm-us: TLS 1.0 accepted"),
            "tls-1.1": ({"probes": [report(), report("mt", TLS_1x1=ACCEPTED)]}, "TLS 1.1"),
            "not-offered": ({"probes": [report(TLS_1x0=NOT_OFFERED)]}, "not shown refused"),
            "not-tried": ({"probes": [without("TLS 1.1")]}, "TLS 1.1 not tried"),
            "empty": ({"probes": []}, "selected no probe results"),
        },
    ),
    Controls(
        tls.no_weak_suites,
        {"probes": STRONG},
        {
            "cbc": ({"probes": [report(TLS_1x2_CBC=ACCEPTED)]}, "TLS 1.2 CBC (no AEAD) accepted"),
            "none-probed": (
                {"probes": [without("TLS 1.2 CBC (no AEAD)")]},
                "no weak TLS 1.2 family was probed",
            ),
            "empty": ({"probes": []}, "selected no probe results"),
        },
    ),
    Controls(
        tls.strong_suite,
        {"probes": STRONG},
        {
            "refused": ({"probes": [report(TLS_1x2_ECDHE_AEAD=REFUSED)]}, "dm-us: refused"),
            "not-tried": ({"probes": [without("TLS 1.2 ECDHE AEAD")]}, "not tried"),
            "empty": ({"probes": []}, "selected no probe results"),
        },
    ),
    Controls(
        tls.passes_policy,
        {"probes": STRONG},
        {
            "weak": ({"probes": [report(TLS_1x0=ACCEPTED)]}, "TLS 1.0: accepted"),
            "probe-error": ({"probes": [report(TLS_1x3=ERROR)]}, "TLS 1.3: probe error"),
            "empty": ({"probes": []}, "selected no probe results"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)
