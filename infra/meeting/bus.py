"""`NatsBus`: the message bus of a replicated meeting region, a NATS cluster on ECS Fargate.

The signaling replicas reach the owner of each live conference over core NATS
(docs/meeting-replicas.md); this component runs the server they share. It is not a
`FargateService`: nobody outside the VPC reaches it, so it has no target group and no load
balancer; the replicas find it through AWS Cloud Map (an A record per running task under
`BUS_HOST` in the region's private DNS namespace), and ECS keeps its desired count and replaces a
task whose container health check (the server's own `/healthz` on the monitoring port, inside the
task) fails.

Three tasks, one cluster. Each task's command routes to the Cloud Map name (`--routes
nats://<name>:6222`): the server resolves the name and dials one of the other tasks' addresses, and
route gossip completes the full mesh, so no task needs to know the others in advance and a
replacement task joins by itself. A client connected to any task reaches subscribers on every
other, and nats-py reconnects to another task (the name's other addresses, or those the cluster
announced) when its task dies. One task with ECS replacing it would leave the region without a bus
for the minute a replacement takes: every cross-replica request would fail as "no responders" and
the replicas would start taking each other's conferences over. Three keep a bus up through one
task's loss and a rolling deployment, spread over the region's zones; core NATS keeps no state, so
the number need not be odd (there is no quorum).

Nothing is persisted: the command has no JetStream flag (`-js`, `--jetstream`) and no store
directory, the root filesystem is read-only and the task has no volume; chat crosses the bus and
is never written (MT-18). The client port 4222 is opened by the bus's security group to the
signaling tasks' security group only, the route port 6222 to the bus's own tasks only
(`infra/meeting/region.py`); the monitoring port stays inside the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.meeting.service import LOG_RETENTION_DAYS

NATS_IMAGE = "nats:2.10.24-alpine"
CLIENT_PORT = 4222
ROUTE_PORT = 6222
MONITOR_PORT = 8222
BUS_HOST = "bus"  # its Cloud Map service: `bus.<namespace>`
BUS_TASKS = 3
JETSTREAM_FLAGS = ("-js", "--js", "-jetstream", "--jetstream")


@dataclass(frozen=True)
class NatsBusArgs:
    """Where the bus runs; its image, ports and size are this module's decisions."""

    prefix: str  # e.g. "rt-prod-meeting-eu"
    region: str  # the meeting region (its cluster's name)
    aws_region: str
    cluster_arn: pulumi.Input[str]
    execution_role_arn: pulumi.Input[str]
    namespace_id: pulumi.Input[str]
    namespace_name: str
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    desired_count: int = BUS_TASKS

    @property
    def host(self) -> str:
        return f"{BUS_HOST}.{self.namespace_name}"

    @property
    def url(self) -> str:
        """What the signaling replicas are given as ROOMTRUST_BUS_URL."""
        return f"nats://{self.host}:{CLIENT_PORT}"


def nats_command(args: NatsBusArgs) -> list[str]:
    """The server's command line: core NATS only, clustered through the Cloud Map name."""
    return [
        "nats-server",
        "--addr",
        "0.0.0.0",
        "--port",
        str(CLIENT_PORT),
        "--http_port",
        str(MONITOR_PORT),
        "--cluster_name",
        f"{args.prefix}-bus",
        "--cluster",
        f"nats://0.0.0.0:{ROUTE_PORT}",
        "--routes",
        f"nats://{args.host}:{ROUTE_PORT}",
    ]


class NatsBus(pulumi.ComponentResource):
    """Log group, task definition, Cloud Map service and ECS service of the region's NATS cluster."""

    def __init__(
        self, name: str, args: NatsBusArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "roomtrust:meeting:NatsBus",
            name,
            {"role": "bus", "url": args.url, "image": NATS_IMAGE},
            opts,
        )
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/roomtrust/{args.prefix}/bus"
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=log_group_name, retention_in_days=LOG_RETENTION_DAYS, opts=child
        )
        container: dict[str, Any] = {
            "name": "bus",
            "image": NATS_IMAGE,
            "essential": True,
            # the image's entrypoint runs its arguments; its default command would read the
            # image's configuration file instead of these flags
            "command": nats_command(args),
            "portMappings": [
                {"containerPort": CLIENT_PORT, "protocol": "tcp"},
                {"containerPort": ROUTE_PORT, "protocol": "tcp"},
            ],
            "healthCheck": {
                "command": [
                    "CMD",
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                    f"http://127.0.0.1:{MONITOR_PORT}/healthz",
                ],
                "interval": 10,
                "timeout": 5,
                "retries": 3,
                "startPeriod": 10,
            },
            "readonlyRootFilesystem": True,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group_name,
                    "awslogs-region": args.aws_region,
                    "awslogs-stream-prefix": "bus",
                },
            },
        }
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{args.prefix}-bus",
            cpu="512",
            memory="1024",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=args.execution_role_arn,
            container_definitions=pulumi.Output.json_dumps([container]),
            opts=child,
        )
        self.registry = aws.servicediscovery.Service(
            f"{name}-registry",
            name=BUS_HOST,
            namespace_id=args.namespace_id,
            dns_config={
                "namespace_id": args.namespace_id,
                "routing_policy": "MULTIVALUE",
                "dns_records": [{"type": "A", "ttl": 10}],
            },
            # ECS reports each task's container health to Cloud Map: an unhealthy task leaves
            # the name before it is replaced
            health_check_custom_config={},
            opts=child,
        )
        self.service = aws.ecs.Service(
            f"{name}-service",
            name=f"{args.prefix}-bus",
            cluster=args.cluster_arn,
            task_definition=self.task_definition.arn,
            launch_type="FARGATE",
            desired_count=args.desired_count,
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            network_configuration={
                "subnets": args.subnet_ids,
                "security_groups": args.security_group_ids,
                "assign_public_ip": False,
            },
            service_registries={"registry_arn": self.registry.arn},
            propagate_tags="SERVICE",
            opts=child,
        )
        self.register_outputs({"service": self.service.name, "url": args.url})
