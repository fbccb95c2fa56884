"""`MeetingRegion`: one meeting region on AWS, pinned to its AWS region by an explicit provider.

A VPC with public and private subnets; an ECS Fargate cluster running signaling (behind an
HTTPS-only ALB with a TLS 1.2+ policy) and the media relay (behind an NLB that opens only the UDP
media ports); RDS PostgreSQL, encrypted, with forced TLS, backups and deletion protection; an S3
bucket for recordings (SSE-KMS, public access blocked, no replication, TLS-only bucket policy);
CloudWatch log groups keeping 180 days.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.meeting.service import FargateService, FargateServiceArgs
from protocol.regions import MEETING_REGIONS

# region -> the AWS regions that meeting region may run in (the first is the default)
MEETING_AWS_REGIONS: dict[str, tuple[str, ...]] = {
    "na": ("us-east-1", "us-east-2", "us-west-2", "ca-central-1"),
    "sa": ("sa-east-1",),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"),
    "asia": ("ap-southeast-1", "ap-northeast-1", "ap-south-1"),
}
SIGNALING_PORT = 8443
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
        self._compute(name)
        self.register_outputs(
            {
                "alb_dns_name": self.alb.dns_name,
                "nlb_dns_name": self.nlb.dns_name,
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
        bucket_name = f"{self.prefix}-recordings-{self.args.account_id}"
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

    def _compute(self, name: str) -> None:
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=self.prefix,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            opts=self.child,
        )
        role = aws.iam.Role(
            f"{name}-task-execution",
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
        aws.iam.RolePolicyAttachment(
            f"{name}-task-execution-policy",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            opts=self.child,
        )
        public_ids = [s.id for s in self.public_subnets]
        private_ids = [s.id for s in self.private_subnets]

        def service(
            role_name: str,
            sg: aws.ec2.SecurityGroup,
            port: int,
            proto: str,
            command: list[str],
            health_path: str,
        ) -> FargateService:
            return FargateService(
                f"{name}-{role_name}",
                FargateServiceArgs(
                    prefix=self.prefix,
                    role=role_name,
                    image=self.args.image,
                    command=["python", "-m", *command],
                    aws_region=self.args.aws_region,
                    cluster_arn=cluster.arn,
                    execution_role_arn=role.arn,
                    vpc_id=self.vpc.id,
                    subnet_ids=private_ids,
                    security_group_ids=[sg.id],
                    target_port=port,
                    target_protocol=proto,
                    health_port=SIGNALING_PORT,
                    health_path=health_path,
                    desired_count=self.args.desired_count,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"aws": self.provider}),
            )

        common = ["--region", self.args.region, "--home", "/data", "--port", str(SIGNALING_PORT)]
        media_port = self.args.media_ports[0]
        # the same modules the self-hosted stack runs (infra/local)
        signaling = service(
            "signaling",
            self.signaling_sg,
            SIGNALING_PORT,
            "HTTPS",
            ["services.meeting.main", *common],
            "/healthz",
        )
        relay = service(
            "relay",
            self.relay_sg,
            media_port,
            "UDP",
            ["services.meeting.relay", *common, "--media-port", str(media_port)],
            "/v1/health",
        )

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
        aws.lb.Listener(
            f"{name}-alb-https",
            load_balancer_arn=self.alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=self.args.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": signaling.target_group.arn}],
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
        for port in self.args.media_ports:
            aws.lb.Listener(
                f"{name}-nlb-media-{port}",
                load_balancer_arn=self.nlb.arn,
                port=port,
                protocol="UDP",
                default_actions=[{"type": "forward", "target_group_arn": relay.target_group.arn}],
                opts=self.child,
            )
