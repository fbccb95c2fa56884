"""The infrastructure claims as pure checks over a resource graph: one check per IN-* claim.

Each check selects the resources its claim is about, applies per-resource rules (a function of a
resource type and its properties) and graph rules (links between resources), and returns a
`CheckResult`. A missing property is a violation, never a pass (no `minimumTlsVersion` means TLS
1.0), and a check that selected nothing fails too. Nothing here imports Pulumi: the same functions
run over mock snapshots (`roomtrust infra check`) and inside the policy pack (`pulumi preview
--policy-pack infra/policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from infra.policy.geography import CLOUD_NAME, CLOUD_OF_SERVICE, REGIONS, allowed, normalise
from infra.policy.graph import PROVIDER_PREFIX, Graph, decoded, get

RETENTION_DAYS = 180
MIN_BACKUP_DAYS = 7
MIN_REPLICAS = 2
ENVIRONMENTS = ("prod", "staging", "ci")
TLS_STORAGE = {"TLS1_2", "TLS1_3"}
TLS_PROTOCOL = {"TLSv1.2", "TLSv1.3"}
# ELB policies that refuse anything below TLS 1.2
ELB_TLS12_POLICIES = {
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
}
LOCAL_REDUNDANCY = {"Standard_LRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS"}
INTERNET = {"0.0.0.0/0", "::/0"}

# resource types
AZ_STORAGE = "azure-native:storage:StorageAccount"
AZ_POLICY = "azure-native:storage:ManagementPolicy"
AZ_OBJECT_REPLICATION = "azure-native:storage:ObjectReplicationPolicy"
AZ_APP = "azure-native:app:ContainerApp"
AZ_PG = "azure-native:dbforpostgresql:Server"
AZ_PG_CONFIG = "azure-native:dbforpostgresql:Configuration"
AZ_WORKSPACE = "azure-native:operationalinsights:Workspace"
AZ_DATA_EXPORT = "azure-native:operationalinsights:DataExport"
AZ_VAULT = "azure-native:keyvault:Vault"
AWS_BUCKET = "aws:s3/bucket:Bucket"
AWS_BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
AWS_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
AWS_SSE_V2 = (
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
)
AWS_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
AWS_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
AWS_PUBLIC_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
AWS_LISTENER = "aws:lb/listener:Listener"
AWS_TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
AWS_RDS = "aws:rds/instance:Instance"
AWS_RDS_PARAMS = "aws:rds/parameterGroup:ParameterGroup"
AWS_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
AWS_ECS_SERVICE = "aws:ecs/service:Service"
AWS_TASK = "aws:ecs/taskDefinition:TaskDefinition"
AWS_KMS = "aws:kms/key:Key"
AWS_SG = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_CLOUD_MAP_SERVICE = "aws:servicediscovery/service:Service"
AWS_CLOUD_MAP_NAMESPACE = "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace"
# a NATS server persists messages only with JetStream on (`-js`, `--jetstream`, `--store_dir`)
NATS_PERSISTENCE_FLAGS = ("-js", "--js", "-jetstream", "--jetstream", "-sd", "--store_dir")
BUCKETS = (AWS_BUCKET, AWS_BUCKET_V2)


@dataclass(frozen=True)
class Violation:
    claim: str
    urn: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "urn": self.urn, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    claim: str
    title: str
    stack: str
    selected: int
    violations: tuple[Violation, ...]

    @property
    def passed(self) -> bool:
        return self.selected > 0 and not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "title": self.title,
            "stack": self.stack,
            "selected": self.selected,
            "passed": self.passed,
            "violations": [v.as_dict() for v in self.violations],
        }


@dataclass
class _Collector:
    claim: str
    selected: int = 0
    found: list[Violation] = field(default_factory=list)

    def select(self, count: int = 1) -> None:
        self.selected += count

    def add(self, resource: dict[str, Any] | None, message: str) -> None:
        urn = resource["urn"] if resource else None
        self.found.append(Violation(self.claim, urn, message))

    def extend(self, resource: dict[str, Any], messages: Iterable[str]) -> None:
        for message in messages:
            self.add(resource, message)


# ---------------------------------------------------------------- per-resource rules


def _as_list(value: Any) -> list[Any]:
    value = decoded(value)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def storage_account_tls(props: dict[str, Any]) -> list[str]:
    found = []
    tls = props.get("minimumTlsVersion")
    if tls not in TLS_STORAGE:
        found.append(
            f"minimumTlsVersion is {tls!r}: must be TLS1_2 or later"
            if tls
            else "no minimumTlsVersion: the account would accept TLS 1.0"
        )
    if props.get("enableHttpsTrafficOnly") is not True:
        found.append("enableHttpsTrafficOnly is not true: plain HTTP would be accepted")
    return found


def container_app_tls(props: dict[str, Any]) -> list[str]:
    ingress = get(props, "configuration", "ingress")
    if not isinstance(ingress, dict):
        return ["no ingress configuration: TLS settings unknown"]
    found = []
    if ingress.get("allowInsecure") is not False:
        found.append("ingress.allowInsecure is not false: HTTP would be served")
    for container in get(props, "template", "containers") or [None]:
        env = {e.get("name"): e.get("value") for e in (get(container, "env") or [])}
        if env.get("ROOMTRUST_TLS_MIN_VERSION") not in TLS_PROTOCOL:
            found.append(
                f"container {get(container, 'name')!r}: minimum TLS version not pinned to "
                "TLSv1.2 or later (ROOMTRUST_TLS_MIN_VERSION)"
            )
    return found


def listener_tls(props: dict[str, Any]) -> list[str]:
    protocol = props.get("protocol")
    if protocol in ("HTTPS", "TLS"):
        policy = props.get("sslPolicy")
        if policy not in ELB_TLS12_POLICIES:
            return [
                f"sslPolicy {policy!r} admits TLS below 1.2"
                if policy
                else "no sslPolicy: the default ELBSecurityPolicy-2016-08 admits TLS 1.0"
            ]
        return []
    if protocol == "UDP":
        return []  # media: SRTP keyed over TLS signaling; ports are checked by MT-12
    return [f"listener protocol {protocol!r} is not TLS" if protocol else "no listener protocol"]


def target_group_tls(props: dict[str, Any]) -> list[str]:
    protocol = props.get("protocol")
    if protocol in ("HTTPS", "TLS", "UDP"):
        return []
    return [f"target group protocol {protocol!r}: traffic to the service would be plaintext"]


def task_health(props: dict[str, Any]) -> list[str]:
    raw = props.get("containerDefinitions")
    try:
        containers = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return ["containerDefinitions is not valid JSON"]
    if not isinstance(containers, list) or not containers:
        return ["no container definitions"]
    # a non-essential container (an init container that ends by design) needs no health check
    essential = [c for c in containers if c.get("essential", True) is not False]
    if not essential:
        return ["no essential container: the task would never be kept running"]
    return [
        f"container {c.get('name')!r} has no healthCheck"
        for c in essential
        if not get(c, "healthCheck", "command")
    ]


def container_app_health(props: dict[str, Any]) -> list[str]:
    found = []
    minimum = get(props, "template", "scale", "minReplicas")
    if not isinstance(minimum, int | float) or minimum < MIN_REPLICAS:
        found.append(f"minReplicas is {minimum!r}: at least {MIN_REPLICAS} keep the service up")
    containers = get(props, "template", "containers") or []
    if not containers:
        found.append("no containers")
    for container in containers:
        kinds = {p.get("type") for p in container.get("probes") or []}
        for kind in ("Liveness", "Readiness"):
            if kind not in kinds:
                found.append(f"container {container.get('name')!r} has no {kind} probe")
    return found


def ecs_service_count(props: dict[str, Any]) -> list[str]:
    found = []
    count = props.get("desiredCount")
    if not isinstance(count, int | float) or count < MIN_REPLICAS:
        found.append(f"desiredCount is {count!r}: at least {MIN_REPLICAS}")
    if get(props, "deploymentCircuitBreaker", "enable") is not True:
        found.append("no deployment circuit breaker: a failing deployment is not rolled back")
    if not props.get("loadBalancers") and not props.get("serviceRegistries"):
        found.append(
            "neither a load balancer nor a Cloud Map registry: unhealthy tasks are not taken "
            "out of service"
        )
    return found


def log_group_retention(props: dict[str, Any]) -> list[str]:
    days = props.get("retentionInDays")
    if days == RETENTION_DAYS:
        return []
    if days is None:
        return ["no retentionInDays: logs would be kept forever"]
    return [f"retentionInDays is {days}, not {RETENTION_DAYS}"]


def workspace_retention(props: dict[str, Any]) -> list[str]:
    return log_group_retention(props)


def storage_account_encryption(props: dict[str, Any]) -> list[str]:
    encryption = props.get("encryption")
    if not isinstance(encryption, dict) or not encryption.get("keySource"):
        return ["no encryption settings (keySource)"]
    if get(encryption, "services", "blob", "enabled") is not True:
        return ["blob encryption is not enabled"]
    return []


def postgres_flexible_encryption(props: dict[str, Any]) -> list[str]:
    kind = get(props, "dataEncryption", "type")
    if kind in ("SystemManaged", "AzureKeyVault"):
        return []
    return [f"dataEncryption.type is {kind!r}: storage encryption not declared"]


def rds_encryption(props: dict[str, Any]) -> list[str]:
    found = []
    if props.get("storageEncrypted") is not True:
        found.append("storageEncrypted is not true: data and backups unencrypted")
    if not props.get("kmsKeyId"):
        found.append("no kmsKeyId: not encrypted with the region's key")
    return found


def kms_key(props: dict[str, Any]) -> list[str]:
    return [] if props.get("enableKeyRotation") is True else ["key rotation is not enabled"]


def rds_backups(props: dict[str, Any]) -> list[str]:
    found = []
    days = props.get("backupRetentionPeriod")
    if not isinstance(days, int | float) or days < MIN_BACKUP_DAYS:
        found.append(f"backupRetentionPeriod is {days!r}: at least {MIN_BACKUP_DAYS} days")
    if props.get("deletionProtection") is not True:
        found.append("deletionProtection is not true")
    if props.get("skipFinalSnapshot") is not False:
        found.append("skipFinalSnapshot is not false: deleting the database keeps no snapshot")
    return found


def postgres_flexible_backups(props: dict[str, Any]) -> list[str]:
    days = get(props, "backup", "backupRetentionDays")
    if isinstance(days, int | float) and days >= MIN_BACKUP_DAYS:
        return []
    return [f"backup.backupRetentionDays is {days!r}: at least {MIN_BACKUP_DAYS} days"]


RESOURCE_RULES: dict[str, dict[str, Callable[[dict[str, Any]], list[str]]]] = {
    "IN-02": {
        AZ_STORAGE: storage_account_tls,
        AZ_APP: container_app_tls,
        AWS_LISTENER: listener_tls,
        AWS_TARGET_GROUP: target_group_tls,
    },
    "IN-03": {
        AZ_STORAGE: storage_account_encryption,
        AZ_PG: postgres_flexible_encryption,
        AWS_RDS: rds_encryption,
        AWS_KMS: kms_key,
    },
    "IN-05": {AWS_LOG_GROUP: log_group_retention, AZ_WORKSPACE: workspace_retention},
    "IN-07": {AZ_APP: container_app_health, AWS_ECS_SERVICE: ecs_service_count},
    "IN-08": {AWS_RDS: rds_backups, AZ_PG: postgres_flexible_backups},
}


def resource_violations(claim: str, resource_type: str, props: dict[str, Any]) -> list[str]:
    """What is wrong with one resource under one claim's per-resource rules ([] = nothing)."""
    rule = RESOURCE_RULES.get(claim, {}).get(resource_type)
    return rule(props) if rule else []


def _apply_resource_rules(claim: str, graph: Graph, out: _Collector) -> None:
    for resource_type, rule in RESOURCE_RULES.get(claim, {}).items():
        for resource in graph.of_type(resource_type):
            out.select()
            out.extend(resource, rule(resource.get("inputs") or {}))


# ---------------------------------------------------------------- graph rules


def _bucket_name(bucket: dict[str, Any]) -> str | None:
    inputs = bucket.get("inputs") or {}
    name = inputs.get("bucket")
    return str(name) if name else None


def _for_bucket(graph: Graph, bucket: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    name = _bucket_name(bucket)
    return [r for r in graph.of_type(*types) if name and get(r, "inputs", "bucket") == name]


def _denies_insecure_transport(policy: Any) -> bool:
    document = decoded(policy) if isinstance(policy, str) else policy
    for statement in _as_list(get(document, "Statement")):
        if get(statement, "Effect") != "Deny":
            continue
        secure = get(statement, "Condition", "Bool", "aws:SecureTransport")
        if str(secure).lower() == "false":
            return True
    return False


def _region_check(graph: Graph, out: _Collector) -> None:
    meta = graph.meta()
    if meta.service is None:
        out.add(
            None, "no single DmRegion or MeetingRegion component: the stack's region is unknown"
        )
        return
    if meta.region not in REGIONS[meta.service]:
        out.add(
            None,
            f"{meta.service} region {meta.region!r} is not one of {', '.join(REGIONS[meta.service])}",
        )
    if meta.cloud != CLOUD_NAME[meta.service]:
        out.add(None, f"{meta.service} must run on {CLOUD_NAME[meta.service]}, not {meta.cloud!r}")
    geography = allowed(meta.service, meta.region)
    expected_provider = PROVIDER_PREFIX + CLOUD_OF_SERVICE[meta.service]
    for provider in graph.providers():
        out.select()
        inputs = provider.get("inputs") or {}
        if provider["type"] != expected_provider:
            out.add(provider, f"provider {provider['type']} in a {meta.service} stack")
            continue
        where = inputs.get("region") or inputs.get("location")
        if not where:
            out.add(provider, "provider is not pinned to a region")
        elif normalise(str(where)) not in geography:
            out.add(provider, f"provider region {where!r} is outside {meta.service} {meta.region}")
    for resource in graph.custom():
        out.select()
        cloud = resource["type"].split(":", 1)[0]
        if cloud != CLOUD_OF_SERVICE[meta.service]:
            out.add(resource, f"{resource['type']} in a {meta.service} stack")
        if graph.provider_of(resource) is None:
            out.add(resource, "no explicit provider: the region would come from ambient settings")
        inputs = resource.get("inputs") or {}
        for key in ("location", "region"):
            where = inputs.get(key)
            if isinstance(where, str) and normalise(where) not in geography:
                out.add(resource, f"{key} {where!r} is outside {meta.service} {meta.region}")


def _tls_links(graph: Graph, out: _Collector) -> None:
    groups = {
        get(r, "inputs", "name"): r.get("inputs") or {} for r in graph.of_type(AWS_RDS_PARAMS)
    }
    for db in graph.of_type(AWS_RDS):
        out.select()
        name = get(db, "inputs", "parameterGroupName")
        params = groups.get(name)
        if params is None:
            out.add(db, f"parameter group {name!r} is not defined here: rds.force_ssl unknown")
            continue
        values = {p.get("name"): str(p.get("value")) for p in params.get("parameters") or []}
        if values.get("rds.force_ssl") != "1":
            out.add(db, f"parameter group {name!r} does not set rds.force_ssl=1")
        if values.get("ssl_min_protocol_version") not in TLS_PROTOCOL:
            out.add(db, f"parameter group {name!r} does not set ssl_min_protocol_version TLSv1.2+")
    for server in graph.of_type(AZ_PG):
        out.select()
        name = get(server, "inputs", "serverName")
        settings = {
            get(c, "inputs", "configurationName"): str(get(c, "inputs", "value"))
            for c in graph.of_type(AZ_PG_CONFIG)
            if get(c, "inputs", "serverName") == name
        }
        if settings.get("require_secure_transport", "").upper() != "ON":
            out.add(server, "require_secure_transport is not ON")
        if settings.get("ssl_min_protocol_version") not in TLS_PROTOCOL:
            out.add(server, "ssl_min_protocol_version is not TLSv1.2 or later")
    for bucket in graph.of_type(*BUCKETS):
        out.select()
        policies = _for_bucket(graph, bucket, AWS_BUCKET_POLICY)
        if not any(_denies_insecure_transport(get(p, "inputs", "policy")) for p in policies):
            out.add(bucket, "no bucket policy denies requests without TLS (aws:SecureTransport)")


def _bucket_encryption(graph: Graph, out: _Collector) -> None:
    for bucket in graph.of_type(*BUCKETS):
        out.select()
        rules = [
            rule
            for config in _for_bucket(graph, bucket, AWS_SSE, AWS_SSE_V2)
            for rule in _as_list(get(config, "inputs", "rules"))
        ]
        inline = get(bucket, "inputs", "serverSideEncryptionConfiguration", "rule")
        rules += _as_list(inline)
        by_default = [get(r, "applyServerSideEncryptionByDefault") for r in rules]
        if not any(
            get(d, "sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and get(d, "kmsMasterKeyId")
            for d in by_default
        ):
            out.add(bucket, "no SSE-KMS default encryption with a KMS key")


def _no_replication(graph: Graph, out: _Collector) -> None:
    for bucket in graph.of_type(*BUCKETS):
        out.select()
        if get(bucket, "inputs", "replicationConfiguration"):
            out.add(bucket, "bucket has an inline replication configuration")
    for replication in graph.of_type(AWS_REPLICATION):
        out.add(replication, f"replication of bucket {get(replication, 'inputs', 'bucket')!r}")
    for account in graph.of_type(AZ_STORAGE):
        out.select()
        sku = get(account, "inputs", "sku", "name")
        if sku not in LOCAL_REDUNDANCY:
            out.add(account, f"sku {sku!r} is not locally or zone redundant (geo-replicated?)")
    for policy in graph.of_type(AZ_OBJECT_REPLICATION):
        out.add(policy, "object replication policy copies blobs to another account")
    for server in graph.of_type(AZ_PG):
        out.select()
        geo = get(server, "inputs", "backup", "geoRedundantBackup")
        if geo != "Disabled":
            out.add(server, f"geoRedundantBackup is {geo!r}: backups copied to another region")
    for _workspace in graph.of_type(AZ_WORKSPACE):
        out.select()
    for export in graph.of_type(AZ_DATA_EXPORT):
        out.add(export, "workspace data export copies logs out of the workspace")
    for _log_group in graph.of_type(AWS_LOG_GROUP):
        out.select()
    for key in graph.of_type(AWS_KMS):
        out.select()
        if get(key, "inputs", "multiRegion") is True:
            out.add(key, "multi-region KMS key replicates key material to other regions")


def _lifecycle(graph: Graph, out: _Collector) -> None:
    for account in graph.of_type(AZ_STORAGE):
        out.select()
        name = get(account, "inputs", "accountName")
        policies = [p for p in graph.of_type(AZ_POLICY) if get(p, "inputs", "accountName") == name]
        covered: set[str] = set()
        for policy in policies:
            for rule in get(policy, "inputs", "policy", "rules") or []:
                days = get(
                    rule, "definition", "actions", "baseBlob", "delete",
                    "daysAfterModificationGreaterThan",
                )  # fmt: skip
                if rule.get("enabled") is False or days != RETENTION_DAYS:
                    continue
                covered.update(get(rule, "definition", "filters", "prefixMatch") or [])
        for prefix in ("logs/", "diagnostics/"):
            if not any(prefix.startswith(c) for c in covered):
                out.add(account, f"no lifecycle rule deletes {prefix} after {RETENTION_DAYS} days")


AWS_CREDENTIALS = ("allowedAccountIds", "profile")
AZURE_CREDENTIALS = ("subscriptionId", "tenantId", "clientId")


def provider_credentials(provider: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide which account or subscription a provider may touch, and as whom."""
    inputs = provider.get("inputs") or {}
    keys = AWS_CREDENTIALS if provider["type"].endswith(":aws") else AZURE_CREDENTIALS
    found = {k: decoded(inputs.get(k)) for k in keys}
    if provider["type"].endswith(":aws") and inputs.get("assumeRoles"):
        found["profile"] = found["profile"] or decoded(inputs.get("assumeRoles"))
    return found


def _credentials(graph: Graph, out: _Collector) -> None:
    meta = graph.meta()
    if meta.environment not in ENVIRONMENTS:
        out.add(None, f"environment {meta.environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    for provider in graph.providers():
        out.select()
        for key, value in provider_credentials(provider).items():
            if not value:
                out.add(
                    provider,
                    f"provider has no {key}: ambient credentials could reach any environment",
                )


def _service_health(graph: Graph, out: _Collector) -> None:
    for service in graph.of_type(AWS_ECS_SERVICE):
        task = _linked(graph, service, "taskDefinition", AWS_TASK, ("family",))
        if task is None:
            out.add(service, "its task definition is not in the graph: health checks unknown")
        else:
            out.extend(service, task_health(task.get("inputs") or {}))
        arns = [get(lb, "targetGroupArn") for lb in get(service, "inputs", "loadBalancers") or []]
        if not arns and get(service, "inputs", "serviceRegistries"):
            continue  # found through Cloud Map: ECS takes a task that fails its check out of it
        for arn in arns or [None]:
            group = _linked(graph, service, None, AWS_TARGET_GROUP, ("name",), arn)
            if group is None:
                out.add(service, "its target group is not in the graph: health check unknown")
            elif get(group, "inputs", "healthCheck", "enabled") is not True:
                out.add(
                    service, f"target group {get(group, 'inputs', 'name')!r} has no health check"
                )


def _linked(
    graph: Graph,
    resource: dict[str, Any],
    key: str | None,
    target_type: str,
    name_keys: tuple[str, ...],
    reference: Any = None,
) -> dict[str, Any] | None:
    """The resource `resource` refers to: by name inside an ARN, else its only sibling of that type."""
    ref = reference if key is None else get(resource, "inputs", key)
    candidates = list(graph.of_type(target_type))
    if isinstance(ref, str):
        for candidate in candidates:
            for name_key in name_keys:
                name = get(candidate, "inputs", name_key)
                if name and (ref == name or f"/{name}:" in ref or f"/{name}/" in ref):
                    return candidate
    siblings = graph.siblings(resource, target_type)
    return siblings[0] if len(siblings) == 1 else None


def _region_inputs(graph: Graph) -> dict[str, Any]:
    meta = graph.meta()
    for component in graph.resources:
        if component["urn"] == meta.urn:
            return dict(component.get("inputs") or {})
    return {}


def _gateway_listener_ports(graph: Graph) -> set[int]:
    ports = _region_inputs(graph).get("gatewayListeners") or []
    return {int(p) for p in ports if isinstance(p, int | float)}


def _media_ports(graph: Graph, out: _Collector) -> None:
    meta = graph.meta()
    media = set(meta.media_ports)
    gateways = _gateway_listener_ports(graph)
    for listener in graph.of_type(AWS_LISTENER):
        out.select()
        inputs = listener.get("inputs") or {}
        protocol, port = inputs.get("protocol"), inputs.get("port")
        if protocol == "HTTPS" and port == 443:
            continue
        if protocol == "UDP" and port in media:
            continue
        if protocol == "TLS" and port in gateways:
            continue
        out.add(
            listener,
            f"listener {protocol} {port} is neither HTTPS 443, a gateway's TLS port nor a UDP "
            "media port",
        )
    rules: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for group in graph.of_type(AWS_SG):
        out.select()
        rules += [(group, rule) for rule in get(group, "inputs", "ingress") or []]
    for rule_resource in graph.of_type(AWS_SG_INGRESS):
        out.select()
        inputs = rule_resource.get("inputs") or {}
        rules.append(
            (
                rule_resource,
                {
                    "protocol": inputs.get("ipProtocol"),
                    "fromPort": inputs.get("fromPort"),
                    "toPort": inputs.get("toPort"),
                    "cidrBlocks": [inputs.get("cidrIpv4")],
                    "ipv6CidrBlocks": [inputs.get("cidrIpv6")],
                },
            )
        )
    for owner, rule in rules:
        sources = set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or [])
        if not sources & INTERNET:
            continue
        protocol, low, high = rule.get("protocol"), rule.get("fromPort"), rule.get("toPort")
        if low != high:
            out.add(owner, f"internet ingress opens a port range {low}-{high}/{protocol}")
        elif not ((protocol == "tcp" and low == 443) or (protocol == "udp" and low in media)):
            out.add(owner, f"internet ingress on {protocol} {low}: not HTTPS or a media port")
    for db in graph.of_type(AWS_RDS):
        out.select()
        if get(db, "inputs", "publiclyAccessible") is not False:
            out.add(db, "publiclyAccessible is not false")
    for server in graph.of_type(AZ_PG):
        out.select()
        if get(server, "inputs", "network", "publicNetworkAccess") != "Disabled":
            out.add(server, "public network access to the database is not disabled")
    for vault in graph.of_type(AZ_VAULT):
        out.select()
        if get(vault, "inputs", "properties", "publicNetworkAccess") != "Disabled":
            out.add(vault, "public network access to the key vault is not disabled")
    for app in graph.of_type(AZ_APP):
        out.select()
        ingress = get(app, "inputs", "configuration", "ingress") or {}
        if ingress.get("external") and ingress.get("exposedPort", 443) != 443:
            out.add(app, f"external ingress on port {ingress.get('exposedPort')}, not 443")
        if ingress.get("additionalPortMappings"):
            out.add(app, "additional ingress ports are exposed")


def _task_family_role(family: Any) -> str | None:
    return family.rsplit("-", 1)[-1] if isinstance(family, str) and "-" in family else None


def _gateways(graph: Graph, out: _Collector) -> None:
    """A meeting region runs its PSTN and interop gateways as ECS services behind target groups,
    and each gateway's security group opens only its TLS ports (TCP), never to the internet."""
    if graph.meta().service != "meeting":
        return
    gateway_ports: dict[str, Any] = _region_inputs(graph).get("gatewayPorts") or {}
    component = graph.meta().urn
    out.select()
    for role in ("pstn", "interop"):
        ports = {int(p) for p in gateway_ports.get(role) or [] if isinstance(p, int | float)}
        if not ports:
            out.add({"urn": component}, f"the region names no TLS port of its {role} gateway")
            continue
        tasks = [
            t
            for t in graph.of_type(AWS_TASK)
            if _task_family_role(get(t, "inputs", "family")) == role
        ]
        if not tasks:
            out.add({"urn": component}, f"no {role} gateway task definition")
        services = [
            s
            for s in graph.of_type(AWS_ECS_SERVICE)
            if _task_family_role(get(s, "inputs", "name")) == role
        ]
        if not services:
            out.add({"urn": component}, f"no {role} gateway service")
        for service in services:
            out.select()
            if not get(service, "inputs", "loadBalancers"):
                out.add(service, f"the {role} gateway service has no target group")
        groups = [
            g for g in graph.of_type(AWS_SG) if str(g.get("name", "")).endswith(f"-{role}-sg")
        ]
        if not groups:
            out.add({"urn": component}, f"no security group of the {role} gateway")
        for group in groups:
            out.select()
            for rule in get(group, "inputs", "ingress") or []:
                protocol, low, high = rule.get("protocol"), rule.get("fromPort"), rule.get("toPort")
                sources = set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or [])
                if protocol != "tcp" or low != high or low not in ports:
                    out.add(
                        group,
                        f"the {role} gateway's security group opens {protocol} {low}-{high}: only "
                        f"its TLS ports {sorted(ports)} (tcp)",
                    )
                elif sources & INTERNET:
                    out.add(
                        group,
                        f"the {role} gateway's security group opens {low} to the internet: only "
                        "its TLS listeners face it",
                    )


def _containers(task: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = get(task, "inputs", "containerDefinitions")
    try:
        containers = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []


def _essential_env(task: dict[str, Any] | None) -> dict[str, Any]:
    return {
        e.get("name"): e.get("value")
        for c in _containers(task)
        if c.get("essential", True) is not False
        for e in c.get("environment") or []
    }


def _runs_nats(task: dict[str, Any] | None) -> bool:
    return any(
        str(c.get("image", "")).startswith("nats:")
        or str((c.get("command") or [""])[0]).endswith("nats-server")
        for c in _containers(task)
    )


def _persistence_flags(task: dict[str, Any] | None) -> list[str]:
    return [
        str(arg)
        for c in _containers(task)
        for arg in c.get("command") or []
        if str(arg).split("=", 1)[0] in NATS_PERSISTENCE_FLAGS
    ]


def _replicated_signaling(graph: Graph, out: _Collector) -> None:
    """A meeting region running two or more signaling tasks runs them as one replicated region:
    signaling is given a bus (ROOMTRUST_BUS_URL, a NATS URL naming the bus's Cloud Map service in
    the region's private namespace) and the bus is an ECS service of a NATS server, core NATS only
    (no JetStream: chat is never persisted, MT-18), whose security group is not open to the
    internet. Without it each task would own the conferences its sockets joined: one conference,
    several rooms."""
    if graph.meta().service != "meeting":
        return
    component = {"urn": graph.meta().urn}
    services = list(graph.of_type(AWS_ECS_SERVICE))
    signaling = [s for s in services if _task_family_role(get(s, "inputs", "name")) == "signaling"]
    replicated = [s for s in signaling if (get(s, "inputs", "desiredCount") or 0) >= MIN_REPLICAS]
    if not replicated:
        return
    buses = [
        s
        for s in services
        if _runs_nats(_linked(graph, s, "taskDefinition", AWS_TASK, ("family",)))
    ]
    out.select(len(replicated) + len(buses))
    if not buses:
        out.add(component, "signaling runs several tasks but the region runs no bus (NATS) service")
    hosts: set[str] = set()
    ports: set[int] = set()
    namespaces = [get(n, "inputs", "name") for n in graph.of_type(AWS_CLOUD_MAP_NAMESPACE)]
    for bus in buses:
        task = _linked(graph, bus, "taskDefinition", AWS_TASK, ("family",))
        ports |= {
            int(m["containerPort"])
            for c in _containers(task)
            for m in c.get("portMappings") or []
            if isinstance(m.get("containerPort"), int | float)
        }
        for flag in _persistence_flags(task):
            out.add(bus, f"the bus runs NATS with {flag}: JetStream would persist what crosses it")
        registry = None
        for entry in _as_list(get(bus, "inputs", "serviceRegistries")):
            arn = get(entry, "registryArn")
            registry = _linked(graph, bus, None, AWS_CLOUD_MAP_SERVICE, ("name",), arn)
        if registry is None:
            out.add(bus, "the bus is registered in no Cloud Map service: signaling cannot find it")
        else:
            name = get(registry, "inputs", "name")
            hosts |= {f"{name}.{namespace}" for namespace in namespaces if namespace}
        groups = [g for g in graph.of_type(AWS_SG) if str(g.get("name", "")).endswith("-bus-sg")]
        if not groups:
            out.add(bus, "no security group of the bus")
        for group in groups:
            out.select()
            for rule in get(group, "inputs", "ingress") or []:
                sources = set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or [])
                if sources & INTERNET:
                    out.add(
                        group,
                        f"the bus's security group opens {rule.get('fromPort')} to the internet: "
                        "only the signaling tasks may reach it",
                    )
    for service in replicated:
        task = _linked(graph, service, "taskDefinition", AWS_TASK, ("family",))
        env = _essential_env(task)
        url = env.get("ROOMTRUST_BUS_URL")
        count = get(service, "inputs", "desiredCount")
        if not url:
            out.add(
                service,
                f"signaling runs {count} tasks without ROOMTRUST_BUS_URL: each would own the "
                "conferences joined on it (a conference split between tasks)",
            )
            continue
        parts = urlsplit(str(url))
        if parts.scheme != "nats" or parts.hostname not in hosts or parts.port not in ports:
            out.add(
                service,
                f"ROOMTRUST_BUS_URL {url!r} is not the bus's Cloud Map name "
                f"({', '.join(sorted(f'nats://{h}' for h in hosts)) or 'no bus registered'}, "
                f"on a port of its task: {sorted(ports)})",
            )
        database = env.get("ROOMTRUST_DATABASE_URL")
        if not isinstance(database, str) or not database.startswith("postgresql"):
            out.add(service, "a replicated signaling needs a PostgreSQL ROOMTRUST_DATABASE_URL")


def _recordings_private(graph: Graph, out: _Collector) -> None:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in graph.of_type(*BUCKETS):
        out.select()
        blocks = _for_bucket(graph, bucket, AWS_PUBLIC_BLOCK)
        if not any(all(get(b, "inputs", f) is True for f in flags) for b in blocks):
            out.add(bucket, "public access is not fully blocked (all four flags)")
    for account in graph.of_type(AZ_STORAGE):
        out.select()
        if get(account, "inputs", "allowBlobPublicAccess") is not False:
            out.add(account, "allowBlobPublicAccess is not false")


# ---------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Check:
    claim: str
    title: str
    graph_rules: tuple[Callable[[Graph, _Collector], None], ...] = ()

    def __call__(self, document: dict[str, Any]) -> CheckResult:
        graph = Graph(document)
        out = _Collector(self.claim)
        _apply_resource_rules(self.claim, graph, out)
        for rule in self.graph_rules:
            rule(graph, out)
        if out.selected == 0:
            out.add(None, "the check selected no resource")
        return CheckResult(self.claim, self.title, graph.stack, out.selected, tuple(out.found))


CHECKS: dict[str, Check] = {
    c.claim: c
    for c in (
        Check("IN-01", "every resource is pinned to the stack's region", (_region_check,)),
        Check("IN-02", "public endpoints and data-store connections enforce TLS 1.2+", (_tls_links,)),
        Check("IN-03", "databases, object storage and backups are encrypted at rest", (_bucket_encryption,)),
        Check("IN-04", "recording and log storage has no cross-region replication", (_no_replication,)),
        Check("IN-05", "log stores keep 180 days; lifecycle rules delete older data", (_lifecycle,)),
        Check("IN-06", "each stack is bound to its environment's own credentials", (_credentials,)),
        Check("IN-07", "every service has health checks and a desired count", (_service_health, _replicated_signaling)),
        Check("IN-08", "configuration databases are backed up"),
        Check("MT-12", "only HTTPS 443, the gateways' TLS ports and the UDP media ports face the internet", (_media_ports, _gateways)),
        Check("MT-16", "recordings and device data are never publicly readable", (_recordings_private,)),
    )
}  # fmt: skip
IN_CLAIMS = tuple(c for c in CHECKS if c.startswith("IN-"))


def check(claim: str, document: dict[str, Any]) -> CheckResult:
    return CHECKS[claim](document)


def check_all(document: dict[str, Any]) -> list[CheckResult]:
    return [c(document) for c in CHECKS.values()]


# ---------------------------------------------------------------- across stacks


def stack_set_violations(graphs: dict[str, dict[str, Any]]) -> list[str]:
    """IN-01 across stacks: exactly one stack per environment and region, of each service."""
    seen: dict[tuple[str | None, str | None, str | None], list[str]] = {}
    for name, document in graphs.items():
        meta = Graph(document).meta()
        seen.setdefault((meta.environment, meta.service, meta.region), []).append(name)
    found = [
        f"{env}/{service}/{region} has {len(names)} stacks: {', '.join(sorted(names))}"
        for (env, service, region), names in seen.items()
        if len(names) > 1
    ]
    expected = {(e, s, r) for e in ENVIRONMENTS for s, regions in REGIONS.items() for r in regions}
    found += [f"no stack for {e}/{s}/{r}" for e, s, r in sorted(expected - set(seen))]
    found += [
        f"unexpected stack {', '.join(names)} for {e}/{s}/{r}"
        for (e, s, r), names in seen.items()
        if (e, s, r) not in expected
    ]
    return found


def credential_sharing_violations(graphs: dict[str, dict[str, Any]]) -> list[str]:
    """IN-06/MT-04 across stacks: no credential or account value is used by two environments."""
    owners: dict[tuple[str, str], set[str]] = {}
    for document in graphs.values():
        graph = Graph(document)
        environment = graph.meta().environment or "?"
        for provider in graph.providers():
            for key, value in provider_credentials(provider).items():
                for item in _as_list(value):
                    owners.setdefault((key, json.dumps(item)), set()).add(environment)
    return [
        f"{key} {value} is shared by {', '.join(sorted(envs))}"
        for (key, value), envs in sorted(owners.items())
        if len(envs) > 1
    ]


def container_module(command: list[str]) -> str | None:
    """The module a container command runs: `python -m M` runs M, and `roomtrust serve S` runs
    `services.S.main` (roomtrust/cli.py calls that module's main())."""
    if len(command) >= 2 and command[-2] == "-m":
        return command[-1]
    if len(command) >= 3 and command[-3:-1] == ["roomtrust", "serve"]:
        return f"services.{command[-1]}.main"
    return None


def same_codebase_violations(document: dict[str, Any], self_hosted_module: str) -> list[str]:
    """DM-06: the cloud DM containers run the module the self-hosted stack runs."""
    graph = Graph(document)
    apps = list(graph.of_type(AZ_APP))
    if not apps:
        return ["no DM container app selected"]
    found = []
    for app in apps:
        for container in get(app, "inputs", "template", "containers") or []:
            command = container.get("command") or []
            if container_module(command) != self_hosted_module:
                found.append(
                    f"container {container.get('name')!r} runs {command!r}, "
                    f"not `python -m {self_hosted_module}`"
                )
    return found
