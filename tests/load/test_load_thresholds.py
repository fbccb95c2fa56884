"""The verdict of a run: the failure ratio and p95 against the scenario's thresholds."""

from __future__ import annotations

from load.scenario import EndpointThreshold, Thresholds
from load.thresholds import TOTAL, Figures, evaluate

ROWS = [
    Figures("HTTP", "dm telemetry", 1000, 5, 40.0, 180.0),
    Figures("HTTP", "dm enroll", 100, 0, 300.0, 900.0),
    Figures("", TOTAL, 1100, 5, 45.0, 400.0),
]


def test_within_every_threshold_passes() -> None:
    verdict = evaluate(Thresholds(fail_ratio=0.01, p95_ms=500), ROWS)
    assert verdict.passed and verdict.broken == []
    assert verdict.as_dict()["endpoints"][0]["name"] == "dm telemetry"


def test_failure_ratio_over_the_limit_fails() -> None:
    verdict = evaluate(Thresholds(fail_ratio=0.001), ROWS)
    assert not verdict.passed
    assert verdict.broken == ["failure ratio 0.0045 > 0.001 (5 of 1100)"]


def test_p95_of_all_and_of_one_endpoint() -> None:
    thresholds = Thresholds(
        p95_ms=300,
        endpoints={
            "dm enroll": EndpointThreshold(p95_ms=800),
            "dm telemetry": EndpointThreshold(fail_ratio=0.0),
        },
    )
    verdict = evaluate(thresholds, ROWS)
    assert verdict.broken == [
        "p95 400 ms > 300 ms (all requests)",
        "HTTP dm enroll: p95 900 ms > 800 ms",
        "HTTP dm telemetry: failure ratio 0.0050 > 0.0 (5 of 1000)",
    ]


def test_a_threshold_on_an_endpoint_nobody_called_fails() -> None:
    thresholds = Thresholds(endpoints={"dm heartbeat": EndpointThreshold(p95_ms=100)})
    assert evaluate(thresholds, ROWS).broken == ["dm heartbeat: no requests were made"]
    assert evaluate(Thresholds(), []).broken == ["no requests were made"]
