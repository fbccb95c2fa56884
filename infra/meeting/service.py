"""`FargateService`: one ECS Fargate service with its task, log group and load-balancer targets.

The container has a health check, each target group has one too, and the service keeps a desired
count with a circuit breaker, so ECS replaces a failed task without a person (IN-07, MT-03).

The container's contract (what `roomtrust serve <role>` reads, services/common/settings.py): its
command and environment come from here; its root filesystem is read-only, with one writable volume
(`data`, the task's ephemeral storage, at `DATA_MOUNT`) for its state. Secrets Manager secrets reach
it as files: a short-lived init container of the same image (`secrets`) is given them as
environment variables and writes them into the `secrets` volume, which the service container mounts
read-only at `SECRETS_MOUNT` (Fargate injects secrets only as variables; the services read files).
`tests/infra/test_meeting_container_contract.py` starts each container exactly as this spec says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

LOG_RETENTION_DAYS = 180
DATA_MOUNT = "/data"
SECRETS_MOUNT = "/run/secrets/roomtrust"
SECRETS_INIT = "secrets"
# `python -m services.common.secret_files DIR` writes each SECRET_FILE_<NAME> variable to DIR/<name>
SECRETS_COMMAND = ["python", "-m", "services.common.secret_files", SECRETS_MOUNT]
SECRET_PREFIX = "SECRET_FILE_"


@dataclass(frozen=True)
class Target:
    """One load-balancer target of the service: a container port and its target group."""

    port: int
    protocol: str  # "HTTPS", "TLS" or "UDP"
    health_protocol: str = "HTTPS"  # "HTTPS" (with `health_path`) or "TCP"
    health_port: int | None = None  # default: `port`
    health_path: str = "/healthz"


@dataclass(frozen=True)
class FargateServiceArgs:
    """One service of a meeting region."""

    prefix: str  # e.g. "rt-prod-meeting-eu"
    role: str  # "signaling", "relay", "pstn" or "interop"
    image: str
    command: list[str]
    aws_region: str
    cluster_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    targets: Sequence[Target]
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # file name under SECRETS_MOUNT -> the Secrets Manager secret's ARN
    secret_files: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    task_role_arn: pulumi.Input[str] | None = None
    desired_count: int = 2


def _health_command(target: Target) -> list[str]:
    port = target.health_port or target.port
    if target.health_protocol == "TCP":
        code = (
            "import socket,ssl;c=ssl._create_unverified_context();"
            f"c.wrap_socket(socket.create_connection(('127.0.0.1',{port}),3)).close()"
        )
    else:
        code = (
            "import ssl,urllib.request as u;"
            f"u.urlopen('https://127.0.0.1:{port}{target.health_path}',"
            "context=ssl._create_unverified_context(),timeout=3)"
        )
    return ["CMD", "python", "-c", code]


def _secret_variable(file_name: str) -> str:
    return SECRET_PREFIX + file_name.upper().replace("-", "_")


class FargateService(pulumi.ComponentResource):
    """Task definition, log group, target groups and ECS service of one role."""

    def __init__(
        self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("roomtrust:meeting:FargateService", name, {"role": args.role}, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/roomtrust/{args.prefix}/{args.role}"
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name,
            retention_in_days=LOG_RETENTION_DAYS,
            opts=child,
        )

        def logging(stream: str) -> dict[str, Any]:
            return {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group_name,
                    "awslogs-region": args.aws_region,
                    "awslogs-stream-prefix": stream,
                },
            }

        primary = args.targets[0]
        ports: list[dict[str, Any]] = []
        for target in args.targets:
            protocol = "udp" if target.protocol == "UDP" else "tcp"
            ports.append({"containerPort": target.port, "protocol": protocol})
            extra = {"containerPort": target.health_port, "protocol": "tcp"}
            if target.health_port and extra not in ports:
                ports.append(extra)
        mounts = [{"sourceVolume": "data", "containerPath": DATA_MOUNT, "readOnly": False}]
        volumes: list[aws.ecs.TaskDefinitionVolumeArgsDict] = [{"name": "data"}]
        containers: list[dict[str, Any]] = []
        if args.secret_files:
            volumes.append({"name": "secrets"})
            mounts.append(
                {"sourceVolume": "secrets", "containerPath": SECRETS_MOUNT, "readOnly": True}
            )
            containers.append(
                {
                    "name": SECRETS_INIT,
                    "image": args.image,
                    "essential": False,
                    "command": SECRETS_COMMAND,
                    "secrets": [
                        {"name": _secret_variable(file_name), "valueFrom": arn}
                        for file_name, arn in args.secret_files.items()
                    ],
                    "mountPoints": [{"sourceVolume": "secrets", "containerPath": SECRETS_MOUNT}],
                    "readonlyRootFilesystem": True,
                    "logConfiguration": logging(SECRETS_INIT),
                }
            )
        containers.append(
            {
                "name": args.role,
                "image": args.image,
                "essential": True,
                "command": args.command,
                "environment": [
                    {"name": key, "value": value} for key, value in args.environment.items()
                ],
                "portMappings": ports,
                "mountPoints": mounts,
                "healthCheck": {
                    "command": _health_command(primary),
                    "interval": 15,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 20,
                },
                "logConfiguration": logging(args.role),
                "readonlyRootFilesystem": True,
                **(
                    {"dependsOn": [{"containerName": SECRETS_INIT, "condition": "SUCCESS"}]}
                    if args.secret_files
                    else {}
                ),
            }
        )
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{args.prefix}-{args.role}",
            cpu="1024",
            memory="2048",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=args.execution_role_arn,
            task_role_arn=args.task_role_arn,
            container_definitions=pulumi.Output.json_dumps(containers),
            volumes=volumes,
            opts=child,
        )
        self.target_groups: list[aws.lb.TargetGroup] = []
        for index, target in enumerate(args.targets):
            suffix = "" if index == 0 else f"-{target.port}"
            check: aws.lb.TargetGroupHealthCheckArgsDict = {
                "enabled": True,
                "protocol": target.health_protocol,
                "port": str(target.health_port or target.port),
                "interval": 15,
                "healthy_threshold": 3,
                "unhealthy_threshold": 3,
            }
            if target.health_protocol != "TCP":
                check["path"] = target.health_path
            self.target_groups.append(
                aws.lb.TargetGroup(
                    f"{name}-tg{suffix}",
                    # at most 32 characters, never ending in a hyphen (an ELB rule)
                    name=f"{args.prefix}-{args.role}"[: 32 - len(suffix)].rstrip("-") + suffix,
                    port=target.port,
                    protocol=target.protocol,
                    target_type="ip",
                    vpc_id=args.vpc_id,
                    deregistration_delay=30,
                    health_check=check,
                    opts=child,
                )
            )
        self.target_group = self.target_groups[0]
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=f"{args.prefix}-{args.role}",
            cluster=args.cluster_arn,
            task_definition=self.task_definition.arn,
            launch_type="FARGATE",
            desired_count=args.desired_count,
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            health_check_grace_period_seconds=60,
            network_configuration={
                "subnets": args.subnet_ids,
                "security_groups": args.security_group_ids,
                "assign_public_ip": False,
            },
            load_balancers=[
                {
                    "target_group_arn": group.arn,
                    "container_name": args.role,
                    "container_port": target.port,
                }
                for group, target in zip(self.target_groups, args.targets, strict=True)
            ],
            propagate_tags="SERVICE",
            opts=child,
        )
        self.register_outputs({"service": self.service.name})
