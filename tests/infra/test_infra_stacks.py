"""The stack files and the components' argument checks."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from infra.dm import DM_LOCATIONS, DmRegionArgs
from infra.meeting import MEETING_AWS_REGIONS, MeetingRegionArgs
from infra.policy.geography import GEOGRAPHY, REGIONS
from infra.stacks import catalogue
from protocol.regions import DM_REGIONS, MEETING_REGIONS


def test_one_stack_per_environment_and_region() -> None:
    expected = {
        f"{env}-{service}-{region}"
        for env in ("prod", "staging", "ci")
        for service, regions in (("dm", DM_REGIONS), ("meeting", MEETING_REGIONS))
        for region in regions
    }
    assert set(catalogue.stack_names()) == expected
    assert len(expected) == 21


def test_region_sets_are_exactly_the_claims() -> None:
    assert tuple(DM_LOCATIONS) == DM_REGIONS == REGIONS["dm"] == ("us", "eu", "au")
    assert tuple(MEETING_AWS_REGIONS) == MEETING_REGIONS == REGIONS["meeting"]
    assert set(MEETING_REGIONS) == {"na", "sa", "eu", "asia"}


def test_component_locations_lie_inside_the_policy_geography() -> None:
    for region, locations in DM_LOCATIONS.items():
        assert set(locations) <= GEOGRAPHY[("dm", region)]
    for region, locations in MEETING_AWS_REGIONS.items():
        assert set(locations) <= GEOGRAPHY[("meeting", region)]
    assert "ap-southeast-2" not in GEOGRAPHY[("meeting", "asia")]  # Sydney is not Asia


def test_stack_files_only_set_configuration() -> None:
    for name in catalogue.stack_names():
        data = yaml.safe_load(catalogue.stack_file(name).read_text())
        assert set(data) == {"config"}, name
        env, service, region = name.split("-")
        config = catalogue.project_config(name)
        assert (config["environment"], config["service"], config["region"]) == (
            env,
            service,
            region,
        )
        assert catalogue.raw_config(name)["pulumi:disable-default-providers"] == ["*"]


def test_staging_and_prod_share_no_credentials_configuration() -> None:
    values: dict[str, set[str]] = {}
    for name in catalogue.stack_names():
        env = name.split("-")[0]
        creds = catalogue.credentials(name)
        assert creds, f"{name} has no credential configuration"
        values.setdefault(env, set()).update(creds.values())
    assert not values["prod"] & values["staging"]
    assert not values["prod"] & values["ci"]
    assert not values["staging"] & values["ci"]


def test_unknown_stack_is_a_clear_error() -> None:
    with pytest.raises(catalogue.UnknownStack) as info:
        catalogue.raw_config("prod-dm-mars")
    assert info.value.field == "stack"
    assert "prod-dm-mars" in str(info.value)


DM = DmRegionArgs(
    environment="ci", region="eu", location="westeurope", subscription_id="s", tenant_id="t",
    client_id="c", image="dm:1",
)  # fmt: skip
MEETING = MeetingRegionArgs(
    environment="ci", region="sa", aws_region="sa-east-1", account_id="123456789012",
    profile="p", image="m:1", certificate_arn="arn:aws:acm:sa-east-1:123456789012:certificate/x",
)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (dataclasses.replace(DM, region="uk"), "region"),
        (dataclasses.replace(DM, location="eastus"), "location"),
        (dataclasses.replace(DM, min_replicas=1), "min_replicas"),
        (dataclasses.replace(DM, backup_retention_days=3), "backup_retention_days"),
        (dataclasses.replace(MEETING, region="eu", aws_region="us-east-1"), "aws_region"),
        (dataclasses.replace(MEETING, region="antarctica"), "region"),
        (dataclasses.replace(MEETING, account_id="12"), "account_id"),
        (dataclasses.replace(MEETING, media_ports=(22,)), "media_ports"),
        (dataclasses.replace(MEETING, desired_count=1), "desired_count"),
    ],
)
def test_components_refuse_bad_arguments(
    args: DmRegionArgs | MeetingRegionArgs, field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        args.validate()


def test_good_arguments_pass() -> None:
    DM.validate()
    MEETING.validate()
