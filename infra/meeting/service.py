"""`FargateService`: one ECS Fargate service with its task, log group and load-balancer target.

The container has a health check, the target group has one too, and the service keeps a desired
count with a circuit breaker, so ECS replaces a failed task without a person (IN-07, MT-03).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

LOG_RETENTION_DAYS = 180


@dataclass(frozen=True)
class FargateServiceArgs:
    """One service of a meeting region; `target_protocol` is HTTPS (behind the ALB) or UDP (NLB)."""

    prefix: str  # e.g. "rt-prod-meeting-eu"
    role: str  # "signaling" or "relay"
    image: str
    command: list[str]
    aws_region: str
    cluster_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    target_port: int
    target_protocol: str
    health_port: int
    health_path: str = "/healthz"
    desired_count: int = 2


class FargateService(pulumi.ComponentResource):
    """Task definition, log group, target group and ECS service of one role."""

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
        container = {
            "name": args.role,
            "image": args.image,
            "essential": True,
            "command": args.command,
            "portMappings": [
                {"containerPort": args.health_port, "protocol": "tcp"},
                *(
                    [{"containerPort": args.target_port, "protocol": "udp"}]
                    if args.target_protocol == "UDP"
                    else []
                ),
            ],
            "healthCheck": {
                "command": [
                    "CMD",
                    "python",
                    "-c",
                    "import ssl,urllib.request as u;"
                    f"u.urlopen('https://127.0.0.1:{args.health_port}{args.health_path}',"
                    "context=ssl._create_unverified_context(),timeout=3)",
                ],
                "interval": 15,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 20,
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group_name,
                    "awslogs-region": args.aws_region,
                    "awslogs-stream-prefix": args.role,
                },
            },
            "readonlyRootFilesystem": True,
        }
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{args.prefix}-{args.role}",
            cpu="1024",
            memory="2048",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=args.execution_role_arn,
            container_definitions=json.dumps([container]),
            opts=child,
        )
        self.target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            name=f"{args.prefix}-{args.role}"[:32],
            port=args.target_port,
            protocol=args.target_protocol,
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "enabled": True,
                "protocol": "HTTPS",
                "port": str(args.health_port),
                "path": args.health_path,
                "interval": 15,
                "healthy_threshold": 3,
                "unhealthy_threshold": 3,
            },
            opts=child,
        )
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
                    "target_group_arn": self.target_group.arn,
                    "container_name": args.role,
                    "container_port": args.target_port,
                }
            ],
            propagate_tags="SERVICE",
            opts=child,
        )
        self.register_outputs({"service": self.service.name})
