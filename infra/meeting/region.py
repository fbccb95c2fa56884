"""`MeetingRegion`: one meeting region on AWS, pinned to its AWS region by an explicit provider.

A VPC with public and private subnets; an ECS Fargate cluster running signaling (behind an
HTTPS-only ALB with a TLS 1.2+ policy), the media relay (behind an NLB that opens only the UDP
media ports), the PSTN gateway and the interop gateway (behind an NLB of TLS listeners only: the
trunk API on 443, SIP on 5061, H.225.0 on 1300) and the region's bus (a NATS cluster found
through Cloud Map, reached by signaling only: `infra/meeting/bus.py`); RDS PostgreSQL, encrypted, with forced TLS,
backups and deletion protection; an S3 bucket for recordings (SSE-KMS, public access blocked, no
replication, TLS-only bucket policy); Secrets Manager secrets for the region CA, the service tokens
and the recording key; CloudWatch log groups keeping 180 days.

The containers' contract (what `roomtrust serve meeting|relay|pstn|interop` read,
services/common/settings.py): each listens on 0.0.0.0; signaling's database is the RDS instance's,
its recordings go to the bucket (the task role may write it), its certificate carries the public
host names, and its replicas are one region: each is given the bus (ROOMTRUST_BUS_URL, the
bus's Cloud Map name), through which participants on any task reach their conference's owner
(docs/meeting-replicas.md); relays give the media NLB's name to participants and register with the region's
database; the gateways reach signaling by its public name. The region CA, the service tokens and
the recording key are files of a read-only secrets volume; the state directory is the one writable
volume. `tests/infra/test_meeting_container_contract.py` starts each container as this spec says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.meeting.bus import CLIENT_PORT, ROUTE_PORT, NatsBus, NatsBusArgs
from infra.meeting.service import (
    DATA_MOUNT,
    SECRETS_MOUNT,
    FargateService,
    FargateServiceArgs,
    Target,
)
from protocol.regions import MEETING_REGIONS
from protocol.signaling import PATH as SIGNALING_PATH

# region -> the AWS regions that meeting region may run in (the first is the default)
MEETING_AWS_REGIONS: dict[str, tuple[str, ...]] = {
    "na": ("us-east-1", "us-east-2", "us-west-2", "ca-central-1"),
    "sa": ("sa-east-1",),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"),
    "asia": ("ap-southeast-1", "ap-northeast-1", "ap-south-1"),
}
SIGNALING_PORT = 8443
RELAY_CONTROL_PORT = 8443
PSTN_PORT = 8443  # the trunk API (HTTPS), behind the gateway NLB's TLS 443
SIP_TLS_PORT = 5061
H323_TLS_PORT = 1300  # H.225.0 over TLS
# gateway role -> its container's TLS ports (the only ports its security group opens)
GATEWAY_PORTS: dict[str, tuple[int, ...]] = {
    "pstn": (PSTN_PORT,),
    "interop": (SIP_TLS_PORT, H323_TLS_PORT),
}
# the gateway NLB's TLS listeners: public port -> (role, container port)
GATEWAY_LISTENERS: dict[int, tuple[str, int]] = {
    443: ("pstn", PSTN_PORT),
    SIP_TLS_PORT: ("interop", SIP_TLS_PORT),
    H323_TLS_PORT: ("interop", H323_TLS_PORT),
}
DATABASE_NAME = "roomtrust"
HEALTH_PATHS = {"signaling": "/healthz", "relay": "/v1/health", "pstn": "/v1/health"}
# Secrets Manager secret -> (the file it is mounted as, the setting naming that file). The values
# are put in at the region's key ceremony, never by this program (they would sit in its state).
SECRETS: dict[str, str] = {
    "region-ca-cert": "ROOMTRUST_CA_CERT_FILE",
    "region-ca-key": "ROOMTRUST_CA_KEY_FILE",
    "relay-token": "ROOMTRUST_RELAY_TOKEN_FILE",
    "pstn-token": "ROOMTRUST_PSTN_TOKEN_FILE",
    "interop-token": "ROOMTRUST_INTEROP_TOKEN_FILE",
    "recording-key": "ROOMTRUST_RECORDING_KEY_FILE",
}
# which secrets each role mounts
ROLE_SECRETS: dict[str, tuple[str, ...]] = {
    "signaling": tuple(SECRETS),
    "relay": ("region-ca-cert", "region-ca-key", "relay-token"),
    "pstn": ("region-ca-cert", "region-ca-key", "pstn-token"),
    "interop": ("region-ca-cert", "region-ca-key", "interop-token"),
}
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
INTERNET = "0.0.0.0/0"


@dataclass(frozen=True)
class MeetingRegionArgs:
    """What a stack configures; the component holds every other decision."""

    environment: str
    region: str
    aws_region: str
    account_id: str
    profile: str
    image: str
    certificate_arn: str
    cidr_prefix: str = "10.40"
    media_ports: tuple[int, ...] = (10000,)
    desired_count: int = 2
    backup_retention_days: int = 14
    multi_az: bool = False
    instance_class: str = "db.t4g.medium"
    azs: tuple[str, ...] = field(default=("a", "b"))
    # names participants and gateways reach signaling by (DNS to the ALB); the ALB's name is added
    public_host_names: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.region not in MEETING_REGIONS:
            raise ValueError(
                f"region: meeting regions are {', '.join(MEETING_REGIONS)}, not {self.region!r}"
            )
        if self.aws_region not in MEETING_AWS_REGIONS[self.region]:
            raise ValueError(
                f"aws_region: {self.aws_region!r} is outside meeting region {self.region!r} "
                f"(allowed: {', '.join(MEETING_AWS_REGIONS[self.region])})"
            )
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            raise ValueError("account_id: an AWS account ID has 12 digits")
        if not self.media_ports or any(not 1024 <= p <= 65535 for p in self.media_ports):
            raise ValueError("media_ports: one or more UDP ports between 1024 and 65535")
        if self.desired_count < 2:
            raise ValueError("desired_count: at least 2, so a failed task never drops service")
        if not 7 <= self.backup_retention_days <= 35:
            raise ValueError("backup_retention_days: between 7 and 35")


class MeetingRegion(pulumi.ComponentResource):
    """Every AWS resource of one meeting region, all created through one region-pinned provider."""

    def __init__(
        self, name: str, args: MeetingRegionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args.validate()
        super().__init__(
            "roomtrust:meeting:MeetingRegion",
            name,
            {
                "cloud": "aws",
                "service": "meeting",
                "environment": args.environment,
                "region": args.region,
                "location": args.aws_region,
                "mediaPorts": list(args.media_ports),
                "gatewayPorts": {role: list(ports) for role, ports in GATEWAY_PORTS.items()},
                "gatewayListeners": sorted(GATEWAY_LISTENERS),
            },
            opts,
        )
        self.args = args
        self.prefix = f"rt-{args.environment}-meeting-{args.region}"
        self.provider = aws.Provider(
            f"{name}-aws",
            region=args.aws_region,
            allowed_account_ids=[args.account_id],
            profile=args.profile,
            default_tags={
                "tags": {
                    "service": "meeting",
                    "environment": args.environment,
                    "region": args.region,
                }
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self._network(name)
        self._security_groups(name)
        self.key = aws.kms.Key(
            f"{name}-data-key",
            description=f"{self.prefix}: database, backups and recordings",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            multi_region=False,
            opts=self.child,
        )
        self._database(name)
        self._recordings(name)
        self._secrets(name)
        self._compute(name)
        self.register_outputs(
            {
                "alb_dns_name": self.alb.dns_name,
                "nlb_dns_name": self.nlb.dns_name,
                "gateway_dns_name": self.gateway_nlb.dns_name,
                "recordings_bucket": self.bucket.bucket,
            }
        )

    def _network(self, name: str) -> None:
        cidr = self.args.cidr_prefix
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=f"{cidr}.0.0/16",
            enable_dns_hostnames=True,
            enable_dns_support=True,
            opts=self.child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=self.child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": INTERNET, "gateway_id": gateway.id}],
            opts=self.child,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for index, zone in enumerate(self.args.azs):
            az = f"{self.args.aws_region}{zone}"
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=f"{cidr}.{index}.0/24",
                availability_zone=az,
                map_public_ip_on_launch=False,
                opts=self.child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}-rt",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=self.child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=f"{cidr}.{index + 10}.0/24",
                availability_zone=az,
                opts=self.child,
            )
            self.public_subnets.append(public)
            self.private_subnets.append(private)
        nat_ip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", opts=self.child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=nat_ip.id,
            subnet_id=self.public_subnets[0].id,
            opts=self.child,
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": INTERNET, "nat_gateway_id": nat.id}],
            opts=self.child,
        )
        for zone, subnet in zip(self.args.azs, self.private_subnets, strict=True):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}-rt",
                subnet_id=subnet.id,
                route_table_id=private_routes.id,
                opts=self.child,
            )

    def _security_groups(self, name: str) -> None:
        vpc_cidr = f"{self.args.cidr_prefix}.0.0/16"
        egress: list[aws.ec2.SecurityGroupEgressArgsDict] = [
            {"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [INTERNET]}
        ]
        self.alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=self.vpc.id,
            description="signaling ALB: HTTPS from the internet only",
            ingress=[
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [INTERNET]}
            ],
            egress=egress,
            opts=self.child,
        )
        self.signaling_sg = aws.ec2.SecurityGroup(
            f"{name}-signaling-sg",
            vpc_id=self.vpc.id,
            description="signaling tasks: HTTPS from inside the VPC only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": SIGNALING_PORT,
                    "to_port": SIGNALING_PORT,
                    "cidr_blocks": [vpc_cidr],
                }
            ],
            egress=egress,
            opts=self.child,
        )
        relay_ingress: list[aws.ec2.SecurityGroupIngressArgsDict] = [
            {"protocol": "udp", "from_port": port, "to_port": port, "cidr_blocks": [INTERNET]}
            for port in self.args.media_ports
        ]
        relay_ingress.append(
            {
                "protocol": "tcp",
                "from_port": SIGNALING_PORT,
                "to_port": SIGNALING_PORT,
                "cidr_blocks": [vpc_cidr],
            }
        )
        self.relay_sg = aws.ec2.SecurityGroup(
            f"{name}-relay-sg",
            vpc_id=self.vpc.id,
            description="media relay: UDP media ports from the internet; health from the VPC",
            ingress=relay_ingress,
            egress=egress,
            opts=self.child,
        )
        # The gateway NLB's TLS listeners re-encrypt to the tasks: the tasks are reached from the
        # VPC (the NLB's addresses), on their TLS ports only.
        self.gateway_sgs: dict[str, aws.ec2.SecurityGroup] = {}
        for role, ports in GATEWAY_PORTS.items():
            self.gateway_sgs[role] = aws.ec2.SecurityGroup(
                f"{name}-{role}-sg",
                vpc_id=self.vpc.id,
                description=f"{role} gateway tasks: its TLS ports from inside the VPC only",
                ingress=[
                    {"protocol": "tcp", "from_port": p, "to_port": p, "cidr_blocks": [vpc_cidr]}
                    for p in ports
                ],
                egress=egress,
                opts=self.child,
            )
        # the bus trusts what it carries (the replicas signed the sockets in): only signaling
        # reaches its clients' port, and only its own tasks its route port
        self.bus_sg = aws.ec2.SecurityGroup(
            f"{name}-bus-sg",
            vpc_id=self.vpc.id,
            description="bus (NATS): clients from signaling, routes between bus tasks only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": CLIENT_PORT,
                    "to_port": CLIENT_PORT,
                    "security_groups": [self.signaling_sg.id],
                },
                {
                    "protocol": "tcp",
                    "from_port": ROUTE_PORT,
                    "to_port": ROUTE_PORT,
                    "self": True,
                },
            ],
            egress=egress,
            opts=self.child,
        )
        self.db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            vpc_id=self.vpc.id,
            description="database: PostgreSQL from the VPC only",
            ingress=[
                {"protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": [vpc_cidr]}
            ],
            egress=egress,
            opts=self.child,
        )

    def _database(self, name: str) -> None:
        group_name = f"{self.prefix}-pg16"
        parameters = aws.rds.ParameterGroup(
            f"{name}-db-params",
            name=group_name,
            family="postgres16",
            description="force TLS 1.2+ on every connection",
            parameters=[
                {"name": "rds.force_ssl", "value": "1", "apply_method": "immediate"},
                {
                    "name": "ssl_min_protocol_version",
                    "value": "TLSv1.2",
                    "apply_method": "immediate",
                },
            ],
            opts=self.child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-db-subnets",
            name=f"{self.prefix}-db",
            subnet_ids=[s.id for s in self.private_subnets],
            opts=self.child,
        )
        self.database = aws.rds.Instance(
            f"{name}-db",
            identifier=f"{self.prefix}-db",
            engine="postgres",
            engine_version="16",
            db_name=DATABASE_NAME,
            instance_class=self.args.instance_class,
            allocated_storage=100,
            max_allocated_storage=500,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self.key.arn,
            parameter_group_name=group_name,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[self.db_sg.id],
            publicly_accessible=False,
            multi_az=self.args.multi_az,
            username="roomtrust",
            manage_master_user_password=True,
            iam_database_authentication_enabled=True,
            backup_retention_period=self.args.backup_retention_days,
            backup_window="02:00-03:00",
            copy_tags_to_snapshot=True,
            delete_automated_backups=False,
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{self.prefix}-db-final",
            opts=pulumi.ResourceOptions.merge(
                self.child, pulumi.ResourceOptions(depends_on=[parameters])
            ),
        )

    def _recordings(self, name: str) -> None:
        bucket_name = self.bucket_name = f"{self.prefix}-recordings-{self.args.account_id}"
        bucket_arn = f"arn:aws:s3:::{bucket_name}"
        self.bucket = aws.s3.Bucket(
            f"{name}-recordings", bucket=bucket_name, force_destroy=False, opts=self.child
        )
        after_bucket = pulumi.ResourceOptions.merge(
            self.child, pulumi.ResourceOptions(depends_on=[self.bucket])
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-recordings-sse",
            bucket=bucket_name,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=after_bucket,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-recordings-public-access",
            bucket=bucket_name,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after_bucket,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-recordings-ownership",
            bucket=bucket_name,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=after_bucket,
        )
        aws.s3.BucketPolicy(
            f"{name}-recordings-tls-only",
            bucket=bucket_name,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket_arn, f"{bucket_arn}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                        {
                            "Sid": "DenyTlsBelow12",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket_arn, f"{bucket_arn}/*"],
                            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                        },
                    ],
                }
            ),
            opts=after_bucket,
        )

    def _secrets(self, name: str) -> None:
        """One Secrets Manager secret per file the containers mount, encrypted with the region key;
        their values are set at the region's key ceremony."""
        self.secrets = {
            secret: aws.secretsmanager.Secret(
                f"{name}-secret-{secret}",
                name=f"{self.prefix}/{secret}",
                kms_key_id=self.key.arn,
                recovery_window_in_days=30,
                opts=self.child,
            )
            for secret in SECRETS
        }

    def _public_hosts(self) -> pulumi.Output[str]:
        """The names signaling's certificate carries: the configured ones and the ALB's."""
        return self.alb.dns_name.apply(lambda dns: ",".join([*self.args.public_host_names, dns]))

    def _signaling_url(self) -> pulumi.Output[str]:
        """Where the gateways sign in: signaling's first public name (the ALB's certificate)."""
        return self.alb.dns_name.apply(
            lambda dns: f"wss://{(self.args.public_host_names or (dns,))[0]}{SIGNALING_PATH}"
        )

    def _database_url(self) -> pulumi.Output[str]:
        return self.database.address.apply(
            lambda host: (
                f"postgresql+psycopg://roomtrust@{host}:5432/{DATABASE_NAME}?sslmode=require"
            )
        )

    def _roles(self, name: str) -> tuple[aws.iam.Role, aws.iam.Role]:
        """The task execution role (pulls the image, writes logs, reads the region's secrets) and
        the task role (signaling writes and reads recordings in the bucket)."""

        def role(suffix: str) -> aws.iam.Role:
            return aws.iam.Role(
                f"{name}-{suffix}",
                assume_role_policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                ),
                opts=self.child,
            )

        execution = role("task-execution")
        aws.iam.RolePolicyAttachment(
            f"{name}-task-execution-policy",
            role=execution.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            opts=self.child,
        )
        secret_arns = [secret.arn for secret in self.secrets.values()]
        aws.iam.RolePolicy(
            f"{name}-task-execution-secrets",
            role=execution.id,
            policy=pulumi.Output.all(self.key.arn, *secret_arns).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": list(arns[1:]),
                            },
                            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": arns[0]},
                        ],
                    }
                )
            ),
            opts=self.child,
        )
        task = role("task")
        bucket_arn = f"arn:aws:s3:::{self.bucket_name}"
        aws.iam.RolePolicy(
            f"{name}-task-recordings",
            role=task.id,
            policy=self.key.arn.apply(
                lambda key: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                                "Resource": f"{bucket_arn}/*",
                            },
                            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
                            {
                                "Effect": "Allow",
                                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                                "Resource": key,
                            },
                        ],
                    }
                )
            ),
            opts=self.child,
        )
        return execution, task

    def _bus(
        self,
        name: str,
        cluster_arn: pulumi.Input[str],
        execution_role_arn: pulumi.Input[str],
        subnet_ids: list[pulumi.Output[str]],
    ) -> NatsBus:
        """The region's NATS cluster, found by its Cloud Map name in a private namespace."""
        namespace_name = f"{self.prefix}.internal"
        namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace",
            name=namespace_name,
            vpc=self.vpc.id,
            description=f"{self.prefix}: the region's internal names (its bus)",
            opts=self.child,
        )
        args = NatsBusArgs(
            prefix=self.prefix,
            region=self.args.region,
            aws_region=self.args.aws_region,
            cluster_arn=cluster_arn,
            execution_role_arn=execution_role_arn,
            namespace_id=namespace.id,
            namespace_name=namespace_name,
            subnet_ids=subnet_ids,
            security_group_ids=[self.bus_sg.id],
        )
        self.bus_url = args.url
        return NatsBus(
            f"{name}-bus",
            args,
            opts=pulumi.ResourceOptions(parent=self, providers={"aws": self.provider}),
        )

    def _compute(self, name: str) -> None:
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=self.prefix,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            opts=self.child,
        )
        execution, task_role = self._roles(name)
        public_ids = [s.id for s in self.public_subnets]
        private_ids = [s.id for s in self.private_subnets]
        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=f"{self.prefix}-alb"[:32],
            load_balancer_type="application",
            internal=False,
            security_groups=[self.alb_sg.id],
            subnets=public_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=True,
            opts=self.child,
        )
        self.nlb = aws.lb.LoadBalancer(
            f"{name}-nlb",
            name=f"{self.prefix}-nlb"[:32],
            load_balancer_type="network",
            internal=False,
            subnets=public_ids,
            enable_cross_zone_load_balancing=True,
            enable_deletion_protection=True,
            opts=self.child,
        )
        self.gateway_nlb = aws.lb.LoadBalancer(
            f"{name}-gw-nlb",
            name=f"{self.prefix}-gw"[:32],
            load_balancer_type="network",
            internal=False,
            subnets=public_ids,
            enable_cross_zone_load_balancing=True,
            enable_deletion_protection=True,
            opts=self.child,
        )
        region = self.args.region
        media_port = self.args.media_ports[0]
        self.bus = self._bus(name, cluster.arn, execution.arn, private_ids)
        common: dict[str, pulumi.Input[str]] = {
            "ROOMTRUST_REGION": region,
            "ROOMTRUST_HOST": "0.0.0.0",
            "ROOMTRUST_HOME": DATA_MOUNT,
            "ROOMTRUST_TLS_MIN_VERSION": "TLSv1.2",
        }
        environments: dict[str, dict[str, pulumi.Input[str]]] = {
            "signaling": {
                "ROOMTRUST_PORT": str(SIGNALING_PORT),
                "ROOMTRUST_PUBLIC_HOSTS": self._public_hosts(),
                "ROOMTRUST_DATABASE_URL": self._database_url(),
                "ROOMTRUST_BLOB_STORE": "s3",
                "ROOMTRUST_BLOB_BUCKET": self.bucket_name,
                # replicated mode: the tasks are one region, each live conference owned by one
                "ROOMTRUST_BUS_URL": self.bus_url,
            },
            "relay": {
                "ROOMTRUST_PORT": str(RELAY_CONTROL_PORT),
                "ROOMTRUST_MEDIA_PORT": str(media_port),
                "ROOMTRUST_MEDIA_HOST": self.nlb.dns_name,
                # the relay registry (address, control URL, capacity) is the region's database
                "ROOMTRUST_DATABASE_URL": self._database_url(),
            },
            "pstn": {
                "ROOMTRUST_PORT": str(PSTN_PORT),
                "ROOMTRUST_PUBLIC_HOSTS": self.gateway_nlb.dns_name,
                "ROOMTRUST_SIGNALING_URL": self._signaling_url(),
            },
            "interop": {
                "ROOMTRUST_SIP_PORT": str(SIP_TLS_PORT),
                "ROOMTRUST_H323_PORT": str(H323_TLS_PORT),
                "ROOMTRUST_PUBLIC_HOSTS": self.gateway_nlb.dns_name,
                "ROOMTRUST_SIGNALING_URL": self._signaling_url(),
            },
        }
        targets = {
            "signaling": [Target(SIGNALING_PORT, "HTTPS", health_path=HEALTH_PATHS["signaling"])],
            "relay": [
                Target(media_port, "UDP", "HTTPS", RELAY_CONTROL_PORT, HEALTH_PATHS["relay"])
            ],
            "pstn": [Target(PSTN_PORT, "TLS", health_path=HEALTH_PATHS["pstn"])],
            "interop": [Target(port, "TLS", "TCP") for port in GATEWAY_PORTS["interop"]],
        }
        groups = {
            "signaling": self.signaling_sg,
            "relay": self.relay_sg,
            **self.gateway_sgs,
        }
        self.services: dict[str, FargateService] = {}
        for role, env in environments.items():
            secrets = ROLE_SECRETS[role]
            self.services[role] = FargateService(
                f"{name}-{role}",
                FargateServiceArgs(
                    prefix=self.prefix,
                    role=role,
                    image=self.args.image,
                    # the image's entrypoint is `roomtrust serve`: the same modules the
                    # self-hosted stack runs (roomtrust.stack)
                    command=[
                        "roomtrust",
                        "serve",
                        "meeting" if role == "signaling" else role,
                        "--region",
                        region,
                    ],
                    aws_region=self.args.aws_region,
                    cluster_arn=cluster.arn,
                    execution_role_arn=execution.arn,
                    task_role_arn=task_role.arn if role == "signaling" else None,
                    vpc_id=self.vpc.id,
                    subnet_ids=private_ids,
                    security_group_ids=[groups[role].id],
                    targets=targets[role],
                    environment={
                        **common,
                        **env,
                        **{SECRETS[s]: f"{SECRETS_MOUNT}/{s}" for s in secrets},
                    },
                    secret_files={s: self.secrets[s].arn for s in secrets},
                    desired_count=self.args.desired_count,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"aws": self.provider}),
            )
        aws.lb.Listener(
            f"{name}-alb-https",
            load_balancer_arn=self.alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=self.args.certificate_arn,
            default_actions=[
                {"type": "forward", "target_group_arn": self.services["signaling"].target_group.arn}
            ],
            opts=self.child,
        )
        for port in self.args.media_ports:
            aws.lb.Listener(
                f"{name}-nlb-media-{port}",
                load_balancer_arn=self.nlb.arn,
                port=port,
                protocol="UDP",
                default_actions=[
                    {"type": "forward", "target_group_arn": self.services["relay"].target_group.arn}
                ],
                opts=self.child,
            )
        for public_port, (role, container_port) in GATEWAY_LISTENERS.items():
            service = self.services[role]
            [group] = [
                g
                for g, t in zip(service.target_groups, targets[role], strict=True)
                if t.port == container_port
            ]
            aws.lb.Listener(
                f"{name}-gw-{role}-{public_port}",
                load_balancer_arn=self.gateway_nlb.arn,
                port=public_port,
                protocol="TLS",
                ssl_policy=TLS_POLICY,
                certificate_arn=self.args.certificate_arn,
                default_actions=[{"type": "forward", "target_group_arn": group.arn}],
                opts=self.child,
            )
