"""Negative controls of the `infra` checks (roomtrust/comply/checks/infra.py) over what the graph
policy reports: per-stack results with violations or with nothing selected, stacks on the wrong
cloud or in the wrong regions, cross-stack problems, and a fault the policy failed to catch.
(The last Scenario Outline of features/infra.feature runs the policy itself on broken graphs.)"""

from __future__ import annotations

from typing import Any

import pytest

from roomtrust.comply.checks import infra
from roomtrust.comply.negative import Case, Controls, all_cases


def result(stack: str = "dm-prod-us", selected: int = 4, *violations: str) -> dict[str, Any]:
    return {
        "claim": "IN-05",
        "stack": stack,
        "selected": selected,
        "passed": selected > 0 and not violations,
        "violations": [{"message": m, "urn": f"urn:pulumi:{stack}::x"} for m in violations],
    }


def stack(region: str, cloud: str = "azure-native", *extra: str) -> dict[str, Any]:
    return {
        "region": region,
        "providers": [f"pulumi:providers:{cloud}"],
        "clouds": [cloud, *extra],
    }


DM_STACKS = {"dm-prod-us": stack("us"), "dm-prod-cn": stack("cn")}
CREDENTIALS = {"dm-prod-us": [{"subscriptionId": "a"}], "dm-test-us": [{"subscriptionId": "b"}]}

CONTROLS: list[Controls] = [
    Controls(
        infra.stacks_pass,
        {"results": [result(), result("dm-prod-cn")], "claim": "IN-05"},
        {
            "violation": (
                {"results": [result(), result("dm-prod-cn", 3, "log retention is 30 days")]},
                "dm-prod-cn: log retention is 30 days",
            ),
            "nothing-selected": (
                {"results": [result(), result("dm-prod-cn", 0)]},
                "in ['dm-prod-cn']",
            ),
            "empty": ({"results": []}, "selected no stack results"),
        },
    ),
    Controls(
        infra.stacks_on_cloud,
        {"stacks": DM_STACKS, "cloud": "azure-native", "regions": ["us", "cn"]},
        {
            "other-provider": (
                {"stacks": {**DM_STACKS, "dm-prod-cn": stack("cn", "aws")}},
                "dm-prod-cn: providers ['pulumi:providers:aws']",
            ),
            "foreign-resource": (
                {"stacks": {"dm-prod-us": stack("us", "azure-native", "aws")}},
                "resources of ['aws', 'azure-native']",
            ),
            "region-missing": ({"stacks": {"dm-prod-us": stack("us")}}, "run in ['us'], not"),
            "empty": ({"stacks": {}}, "selected no stacks of the service"),
        },
    ),
    Controls(
        infra.one_stack_each,
        {"stacks": ["dm-prod-us", "dm-test-us"], "problems": []},
        {
            "duplicate": (
                {"problems": ["two stacks for (prod, us, dm)"]},
                "two stacks for (prod, us, dm)",
            ),
            "empty": ({"stacks": []}, "selected no stacks"),
        },
    ),
    Controls(
        infra.credentials_not_shared,
        {"credentials": CREDENTIALS, "problems": []},
        {
            "shared": ({"problems": ["subscriptionId a is used by prod and test"]}, "used by prod"),
            "empty": ({"credentials": {"dm-prod-us": []}}, "selected no provider credentials"),
        },
    ),
    Controls(
        infra.same_module,
        {"problems": {"dm-prod-us": [], "dm-prod-cn": []}},
        {
            "other-module": (
                {"problems": {"dm-prod-us": [], "dm-prod-cn": ["runs services.other"]}},
                "runs services.other",
            ),
            "empty": ({"problems": {}}, "selected no DM stacks"),
        },
    ),
    Controls(
        infra.self_hosted_regions,
        {"module": "services.dm.api.main", "regions": ("us", "cn"), "expected": ("us", "cn")},
        {
            "other-module": ({"module": "services.meeting.api.main"}, "runs 'services.meeting"),
            "region-missing": ({"regions": ("us",)}, "are ['us'], not ['us', 'cn']"),
            "empty": ({"regions": ()}, "selected no self-hosted DM regions"),
        },
    ),
    Controls(
        infra.fails_on_fault,
        {"result": result("dm-prod-us", 4, "log retention is 30 days")},
        {
            "fault-missed": ({"result": result("dm-prod-us", 4)}, "passed on a graph that breaks"),
            "nothing-selected": ({"result": result("dm-prod-us", 0)}, "selected no resource"),
        },
        single="one policy result: there is nothing to select",
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
