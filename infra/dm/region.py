"""`DmRegion`: one DM region on Azure, pinned to its location through an explicit provider.

Resource group and virtual network; a Container Apps environment and app running the DM service
image (TLS passed through to the service, which pins TLS 1.2+, probes, at least two replicas); a
PostgreSQL Flexible Server with forced TLS 1.2 and backups kept in the region's geography; a storage
account for firmware, logs and diagnostics (TLS 1.2, HTTPS only, no public access, encrypted, never
geo-replicated, logs deleted after 180 days); a Key Vault for the region CA and the release key; a
Log Analytics workspace keeping 180 days.

The container's contract (what `roomtrust serve dm` reads, services/common/settings.py): it listens
on 0.0.0.0:8443; its database is the Flexible Server's; its server certificate carries the app's
public host names; the region CA and the release key are Key Vault secrets mounted as files (the
app's user-assigned identity reads them); its blobs go to the storage account; its state directory
is a volume of its own, since the root filesystem is read-only. `tests/infra/
test_dm_container_contract.py` starts the service exactly as this spec says.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_azure_native as azure
from pulumi_azure_native import (
    app,
    authorization,
    dbforpostgresql,
    keyvault,
    managedidentity,
    network,
    operationalinsights,
    resources,
    storage,
)

from protocol.regions import DM_REGIONS

# region -> the Azure locations that region may run in (the first is the default)
DM_LOCATIONS: dict[str, tuple[str, ...]] = {
    "us": ("eastus", "eastus2", "centralus", "westus2", "westus3"),
    "eu": ("westeurope", "northeurope", "germanywestcentral", "francecentral", "swedencentral"),
    "au": ("australiaeast", "australiasoutheast", "australiacentral"),
}
LOG_RETENTION_DAYS = 180
SERVICE_PORT = 8443
DM_MODULE = "services.dm.main"  # the module the self-hosted stack runs too (roomtrust.stack)
# `roomtrust serve dm` runs DM_MODULE's main(); the image's entrypoint is `roomtrust serve`.
DM_COMMAND = ["roomtrust", "serve", "dm"]
HEALTH_PATH = "/healthz"
DATA_MOUNT = "/data"  # the one writable volume: the root filesystem is read-only
SECRETS_MOUNT = "/run/secrets/roomtrust"
DATABASE_NAME = "roomtrust"
# Key Vault secret -> the setting naming the file it is mounted as. The secrets are put in the vault
# at the region's key ceremony, never by this program: a private key here would sit in its state.
VAULT_SECRETS = {
    "region-ca-cert": "ROOMTRUST_CA_CERT_FILE",
    "region-ca-key": "ROOMTRUST_CA_KEY_FILE",
    "release-key": "ROOMTRUST_RELEASE_KEY_FILE",
}
# Built-in Azure role definitions the app's identity is given.
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


@dataclass(frozen=True)
class DmRegionArgs:
    """What a stack configures; the component holds every other decision."""

    environment: str
    region: str
    location: str
    subscription_id: str
    tenant_id: str
    client_id: str
    image: str
    cidr_prefix: str = "10.20"  # the /16 of the region's network, e.g. "10.20" -> 10.20.0.0/16
    min_replicas: int = 2
    max_replicas: int = 10
    backup_retention_days: int = 14
    zone_redundant: bool = False
    # names devices reach the region by (DNS CNAMEs to the app); the app's own FQDN is added
    public_host_names: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.region not in DM_REGIONS:
            raise ValueError(f"region: DM regions are {', '.join(DM_REGIONS)}, not {self.region!r}")
        if self.location not in DM_LOCATIONS[self.region]:
            raise ValueError(
                f"location: {self.location!r} is outside DM region {self.region!r} "
                f"(allowed: {', '.join(DM_LOCATIONS[self.region])})"
            )
        if self.min_replicas < 2:
            raise ValueError("min_replicas: at least 2, so one failed replica never drops service")
        if not 7 <= self.backup_retention_days <= 35:
            raise ValueError("backup_retention_days: between 7 and 35")


def _vault_secret_url(vault_uri: str, secret: str) -> str:
    return f"{vault_uri.rstrip('/')}/secrets/{secret}"


class DmRegion(pulumi.ComponentResource):
    """Every Azure resource of one DM region, all created through one location-pinned provider."""

    def __init__(
        self, name: str, args: DmRegionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args.validate()
        super().__init__(
            "roomtrust:dm:DmRegion",
            name,
            {
                "cloud": "azure",
                "service": "dm",
                "environment": args.environment,
                "region": args.region,
                "location": args.location,
            },
            opts,
        )
        self.args = args
        base = f"rt-{args.environment}-dm-{args.region}"
        compact = f"rt{args.environment}dm{args.region}"  # for names that allow only [a-z0-9]
        loc = args.location
        self.provider = azure.Provider(
            f"{name}-azure",
            location=loc,
            subscription_id=args.subscription_id,
            tenant_id=args.tenant_id,
            client_id=args.client_id,
            use_oidc=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        tags = {"service": "dm", "environment": args.environment, "region": args.region}

        group = resources.ResourceGroup(
            f"{name}-rg", resource_group_name=base, location=loc, tags=tags, opts=child
        )
        rg = group.name
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=f"{base}-vnet",
            resource_group_name=rg,
            location=loc,
            address_space={"address_prefixes": [f"{args.cidr_prefix}.0.0/16"]},
            subnets=[
                {
                    "name": "apps",
                    "address_prefix": f"{args.cidr_prefix}.0.0/23",
                    "delegations": [{"name": "apps", "service_name": "Microsoft.App/environments"}],
                },
                {
                    "name": "db",
                    "address_prefix": f"{args.cidr_prefix}.4.0/24",
                    "delegations": [
                        {
                            "name": "db",
                            "service_name": "Microsoft.DBforPostgreSQL/flexibleServers",
                        }
                    ],
                },
            ],
            tags=tags,
            opts=child,
        )
        subnet_ids = vnet.subnets.apply(
            lambda subnets: {str(s.name): str(s.id) for s in subnets or []}
        )

        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            workspace_name=f"{base}-logs",
            resource_group_name=rg,
            location=loc,
            retention_in_days=LOG_RETENTION_DAYS,
            sku={"name": "PerGB2018"},
            tags=tags,
            opts=child,
        )
        keys = operationalinsights.get_shared_keys_output(
            resource_group_name=rg,
            workspace_name=workspace.name,
            opts=pulumi.InvokeOutputOptions(provider=self.provider, parent=self),
        )

        self.environment = app.ManagedEnvironment(
            f"{name}-apps",
            environment_name=f"{base}-apps",
            resource_group_name=rg,
            location=loc,
            app_logs_configuration={
                "destination": "log-analytics",
                "log_analytics_configuration": {
                    "customer_id": workspace.customer_id,
                    "shared_key": keys.primary_shared_key,
                },
            },
            vnet_configuration={
                "infrastructure_subnet_id": subnet_ids.apply(lambda ids: ids.get("apps")),
                "internal": False,
            },
            zone_redundant=args.zone_redundant,
            tags=tags,
            opts=child,
        )
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=f"{base}-app",
            resource_group_name=rg,
            location=loc,
            tags=tags,
            opts=child,
        )
        self.storage_account = self._storage(name, base, compact, rg, loc, tags, child)
        self.vault = self._vault(name, compact, rg, loc, tags, child)
        self.database = self._database(name, base, rg, loc, subnet_ids, tags, child)
        self._grant(name, child)
        self.container_app = self._container_app(name, base, rg, loc, tags, child)
        self.register_outputs(
            {
                "location": loc,
                "resource_group": group.name,
                "app_fqdn": self.container_app.latest_revision_fqdn,
            }
        )

    def _storage(
        self,
        name: str,
        base: str,
        compact: str,
        rg: pulumi.Input[str],
        loc: str,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> storage.StorageAccount:
        account_name = f"{compact}data"[:24]
        account = storage.StorageAccount(
            f"{name}-data",
            account_name=account_name,
            resource_group_name=rg,
            location=loc,
            kind="StorageV2",
            # zone redundant stays inside the location; no GRS/RA-GRS/GZRS copy to another region
            sku={"name": "Standard_ZRS" if self.args.zone_redundant else "Standard_LRS"},
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            allow_blob_public_access=False,
            allow_cross_tenant_replication=False,
            allow_shared_key_access=False,
            encryption={
                "key_source": "Microsoft.Storage",
                "require_infrastructure_encryption": True,
                "services": {
                    "blob": {"enabled": True, "key_type": "Account"},
                    "file": {"enabled": True, "key_type": "Account"},
                },
            },
            tags=tags,
            opts=child,
        )
        for container in ("firmware", "logs", "diagnostics"):
            storage.BlobContainer(
                f"{name}-{container}",
                container_name=container,
                account_name=account_name,
                resource_group_name=rg,
                public_access=storage.PublicAccess.NONE,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[account])
                ),
            )
        storage.ManagementPolicy(
            f"{name}-lifecycle",
            management_policy_name="default",
            account_name=account_name,
            resource_group_name=rg,
            policy={
                "rules": [
                    {
                        "name": "delete-logs-and-diagnostics-after-180-days",
                        "enabled": True,
                        "type": "Lifecycle",
                        "definition": {
                            "filters": {
                                "blob_types": ["blockBlob", "appendBlob"],
                                "prefix_match": ["logs/", "diagnostics/"],
                            },
                            "actions": {
                                "base_blob": {
                                    "delete": {
                                        "days_after_modification_greater_than": LOG_RETENTION_DAYS
                                    }
                                },
                                "snapshot": {
                                    "delete": {
                                        "days_after_creation_greater_than": LOG_RETENTION_DAYS
                                    }
                                },
                            },
                        },
                    }
                ]
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[account])),
        )
        return account

    def _vault(
        self,
        name: str,
        compact: str,
        rg: pulumi.Input[str],
        loc: str,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> keyvault.Vault:
        vault_name = f"{compact}kv"[:24]
        properties: keyvault.VaultPropertiesArgsDict = {
            "tenant_id": self.args.tenant_id,
            "sku": {"family": keyvault.SkuFamily.A, "name": keyvault.SkuName.PREMIUM},
            "enable_rbac_authorization": True,
            "enable_soft_delete": True,
            "soft_delete_retention_in_days": 90,
            "enable_purge_protection": True,
            "public_network_access": "Disabled",
        }
        vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=vault_name,
            resource_group_name=rg,
            location=loc,
            properties=properties,
            tags=tags,
            opts=child,
        )
        return vault

    def _database(
        self,
        name: str,
        base: str,
        rg: pulumi.Input[str],
        loc: str,
        subnet_ids: pulumi.Output[dict[str, str]],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> dbforpostgresql.Server:
        server_name = f"{base}-db"
        server = dbforpostgresql.Server(
            f"{name}-db",
            server_name=server_name,
            resource_group_name=rg,
            location=loc,
            version="16",
            sku={"name": "Standard_D2ds_v5", "tier": "GeneralPurpose"},
            storage={"storage_size_gb": 128, "auto_grow": "Enabled"},
            # Geo-redundant backups would be copied to the paired region; keep them in-region.
            backup={
                "backup_retention_days": self.args.backup_retention_days,
                "geo_redundant_backup": "Disabled",
            },
            high_availability={"mode": "ZoneRedundant" if self.args.zone_redundant else "Disabled"},
            network={
                "delegated_subnet_resource_id": subnet_ids.apply(lambda ids: ids.get("db")),
                "public_network_access": "Disabled",
            },
            auth_config={
                "active_directory_auth": "Enabled",
                "password_auth": "Disabled",
                "tenant_id": self.args.tenant_id,
            },
            data_encryption={"type": "SystemManaged"},
            tags=tags,
            opts=child,
        )
        after_server = pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(depends_on=[server])
        )
        dbforpostgresql.Database(
            f"{name}-db-roomtrust",
            database_name=DATABASE_NAME,
            server_name=server_name,
            resource_group_name=rg,
            charset="UTF8",
            opts=after_server,
        )
        # The app signs in to PostgreSQL as its identity (Entra ID; passwords are off).
        dbforpostgresql.Administrator(
            f"{name}-db-admin",
            server_name=server_name,
            resource_group_name=rg,
            object_id=self.identity.principal_id,
            principal_name=self.identity.name,
            principal_type="ServicePrincipal",
            tenant_id=self.args.tenant_id,
            opts=after_server,
        )
        settings = {"require_secure_transport": "ON", "ssl_min_protocol_version": "TLSv1.2"}
        for setting, value in settings.items():
            dbforpostgresql.Configuration(
                f"{name}-db-{setting.replace('_', '-')}",
                configuration_name=setting,
                server_name=server_name,
                resource_group_name=rg,
                value=value,
                source="user-override",
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[server])
                ),
            )
        return server

    def _grant(self, name: str, child: pulumi.ResourceOptions) -> None:
        """The app's identity reads the vault's secrets and writes the account's blobs."""
        subscription = f"/subscriptions/{self.args.subscription_id}"
        grants = {
            "vault-secrets": (self.vault.id, KEY_VAULT_SECRETS_USER),
            "blob-data": (self.storage_account.id, STORAGE_BLOB_DATA_CONTRIBUTOR),
        }
        for grant, (scope, role) in grants.items():
            authorization.RoleAssignment(
                f"{name}-{grant}",
                principal_id=self.identity.principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=(
                    f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"
                ),
                scope=scope,
                opts=child,
            )

    def _public_hosts(self, base: str) -> pulumi.Output[str]:
        """The names the server certificate carries: the app's FQDN and the configured ones."""
        app_name = f"{base}-app"[:32]
        return self.environment.default_domain.apply(
            lambda domain: ",".join([f"{app_name}.{domain}", *self.args.public_host_names])
        )

    def _database_url(self) -> pulumi.Output[str]:
        """The Flexible Server's URL, TLS required; the user is the app's identity."""
        return pulumi.Output.all(
            self.identity.name, self.database.fully_qualified_domain_name
        ).apply(
            lambda parts: (
                f"postgresql+psycopg://{parts[0]}@{parts[1]}:5432/{DATABASE_NAME}?sslmode=require"
            )
        )

    def _container_app(
        self,
        name: str,
        base: str,
        rg: pulumi.Input[str],
        loc: str,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> app.ContainerApp:
        def probe(kind: str, delay: int) -> app.ContainerAppProbeArgsDict:
            return {
                "type": kind,
                "http_get": {"path": HEALTH_PATH, "port": SERVICE_PORT, "scheme": "HTTPS"},
                "initial_delay_seconds": delay,
                "period_seconds": 10,
                "failure_threshold": 3,
            }

        env: list[app.EnvironmentVarArgsDict] = [
            {"name": "ROOMTRUST_TLS_MIN_VERSION", "value": "TLSv1.2"},
            {"name": "ROOMTRUST_REGION", "value": self.args.region},
            {"name": "ROOMTRUST_HOST", "value": "0.0.0.0"},
            {"name": "ROOMTRUST_PORT", "value": str(SERVICE_PORT)},
            {"name": "ROOMTRUST_HOME", "value": DATA_MOUNT},
            {"name": "ROOMTRUST_PUBLIC_HOSTS", "value": self._public_hosts(base)},
            {"name": "ROOMTRUST_DATABASE_URL", "value": self._database_url()},
            {"name": "ROOMTRUST_BLOB_STORE", "value": "azure"},
            {
                "name": "ROOMTRUST_BLOB_ACCOUNT_URL",
                "value": self.storage_account.primary_endpoints.blob,
            },
            # the identity azure-identity signs in as (blob store)
            {"name": "AZURE_CLIENT_ID", "value": self.identity.client_id},
        ]
        env += [
            {"name": setting, "value": f"{SECRETS_MOUNT}/{secret}"}
            for secret, setting in VAULT_SECRETS.items()
        ]
        vault_uri = self.vault.properties.vault_uri
        secrets: list[app.SecretArgsDict] = [
            {
                "name": secret,
                "key_vault_url": vault_uri.apply(partial(_vault_secret_url, secret=secret)),
                "identity": self.identity.id,
            }
            for secret in VAULT_SECRETS
        ]
        identity: app.ManagedServiceIdentityArgsDict = {
            "type": "UserAssigned",
            "user_assigned_identities": [self.identity.id],
        }
        configuration: app.ConfigurationArgsDict = {
            "active_revisions_mode": "Single",
            # TCP ingress passes TLS through: the DM service terminates it with its pinned
            # context and sees each device's client certificate itself.
            "ingress": {
                "external": True,
                "transport": "tcp",
                "target_port": SERVICE_PORT,
                "exposed_port": 443,
                "allow_insecure": False,
            },
            "secrets": secrets,
        }
        template: app.TemplateArgsDict = {
            "containers": [
                {
                    "name": "dm",
                    "image": self.args.image,
                    "command": DM_COMMAND,
                    "args": ["--region", self.args.region],
                    "env": env,
                    "resources": {"cpu": 1.0, "memory": "2Gi"},
                    "probes": [
                        probe("Startup", 5),
                        probe("Liveness", 15),
                        probe("Readiness", 5),
                    ],
                    "volume_mounts": [
                        {"volume_name": "data", "mount_path": DATA_MOUNT},
                        {"volume_name": "secrets", "mount_path": SECRETS_MOUNT},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", "storage_type": "EmptyDir"},
                {
                    "name": "secrets",
                    "storage_type": "Secret",
                    "secrets": [{"secret_ref": secret, "path": secret} for secret in VAULT_SECRETS],
                },
            ],
            "scale": {
                "min_replicas": self.args.min_replicas,
                "max_replicas": self.args.max_replicas,
            },
        }
        return app.ContainerApp(
            f"{name}-app",
            container_app_name=f"{base}-app"[:32],
            resource_group_name=rg,
            location=loc,
            managed_environment_id=self.environment.id,
            identity=identity,
            configuration=configuration,
            template=template,
            tags=tags,
            opts=child,
        )
