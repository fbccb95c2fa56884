"""The Pulumi program of every cloud stack: read the stack's configuration, build one region.

`roomtrust:service` picks the component (`dm` -> `DmRegion` on Azure, `meeting` -> `MeetingRegion`
on AWS); the rest of the configuration fills its arguments. No resource is defined here.
"""

from __future__ import annotations

import pulumi


def _dm(config: pulumi.Config, environment: str, region: str) -> None:
    from infra.dm import DmRegion, DmRegionArgs

    args = DmRegionArgs(
        environment=environment,
        region=region,
        location=config.require("location"),
        subscription_id=config.require("azureSubscriptionId"),
        tenant_id=config.require("azureTenantId"),
        client_id=config.require("azureClientId"),
        image=config.require("image"),
        cidr_prefix=config.get("cidrPrefix") or "10.20",
        min_replicas=config.get_int("minReplicas") or 2,
        max_replicas=config.get_int("maxReplicas") or 10,
        backup_retention_days=config.get_int("backupRetentionDays") or 14,
        zone_redundant=bool(config.get_bool("zoneRedundant")),
        public_host_names=tuple(config.get_object("publicHostNames") or ()),
    )
    component = DmRegion(f"dm-{region}", args)
    pulumi.export("location", args.location)
    pulumi.export("appFqdn", component.container_app.latest_revision_fqdn)


def _meeting(config: pulumi.Config, environment: str, region: str) -> None:
    from infra.meeting import MeetingRegion, MeetingRegionArgs

    ports = config.get_object("mediaPorts") or [10000]
    args = MeetingRegionArgs(
        environment=environment,
        region=region,
        aws_region=config.require("awsRegion"),
        account_id=config.require("awsAccountId"),
        profile=config.require("awsProfile"),
        image=config.require("image"),
        certificate_arn=config.require("certificateArn"),
        cidr_prefix=config.get("cidrPrefix") or "10.40",
        media_ports=tuple(int(p) for p in ports),
        desired_count=config.get_int("desiredCount") or 2,
        backup_retention_days=config.get_int("backupRetentionDays") or 14,
        multi_az=bool(config.get_bool("multiAz")),
        public_host_names=tuple(config.get_object("publicHostNames") or ()),
    )
    component = MeetingRegion(f"meeting-{region}", args)
    pulumi.export("awsRegion", args.aws_region)
    pulumi.export("signalingDns", component.alb.dns_name)
    pulumi.export("mediaDns", component.nlb.dns_name)
    pulumi.export("gatewayDns", component.gateway_nlb.dns_name)
    pulumi.export("recordingsBucket", component.bucket.bucket)


def build() -> None:
    config = pulumi.Config("roomtrust")
    environment = config.require("environment")
    service = config.require("service")
    region = config.require("region")
    if service == "dm":
        _dm(config, environment, region)
    elif service == "meeting":
        _meeting(config, environment, region)
    else:
        raise ValueError(f"roomtrust:service: 'dm' or 'meeting', not {service!r}")
