"""Settings from the environment (ROOMTRUST_*) and an optional YAML file.

The environment wins over the file, the file over the defaults. `ROOMTRUST_SETTINGS_FILE` names the
file; without it `.roomtrust/settings.yaml` is read when present.

A setting nobody knows is refused, naming it: a misspelt or renamed variable in a deployment
(`ROOMTRUST_DATABSE_URL`) would otherwise be ignored and the service would start on its defaults.
`TOOL_VARIABLES` lists the ROOMTRUST_ variables that other parts of the project read (the CLI, the
local stack, tests); a service inherits them from the shell that starts it and lets them pass.
Bad values are refused as `SettingsError`, whose message names every bad setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PREFIX = "ROOMTRUST_"

# ROOMTRUST_ variables read outside `Settings`, with what reads them.
TOOL_VARIABLES: dict[str, str] = {
    "ROOMTRUST_SETTINGS_FILE": "the settings file itself (this module)",
    "ROOMTRUST_ADMIN_EMAIL": "the admin CLI (roomtrust config|diag|rollout)",
    "ROOMTRUST_ADMIN_PASSWORD": "the admin CLI (roomtrust config|diag|rollout)",
    "ROOMTRUST_RELAYS_PER_REGION": "the local stack launcher",
    "ROOMTRUST_RELAY_REPLACE_DELAY": "the meeting region's relay pool",
    "ROOMTRUST_MEETING_LATENCY_FILE": "the meeting region's placement and the simulations",
    "ROOMTRUST_SIM_FULL_GRID": "the simulation tests",
    "ROOMTRUST_FUZZ_EXAMPLES": "the fuzz tests (make fuzz)",
    "ROOMTRUST_BENCH_FLEET_DEVICES": "the benchmarks (make bench)",
    "ROOMTRUST_IMAGE_BASE": "the image build test (the base image to build on)",
}


class SettingsError(ValueError):
    """Settings a process cannot start with; the message names each bad setting."""


class _YamlFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("ROOMTRUST_SETTINGS_FILE", ".roomtrust/settings.yaml"))
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: settings file must hold a mapping")
        return data


class Settings(BaseSettings):
    """Process-wide settings; every field can be set as ROOMTRUST_<NAME>."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid")

    home: Path = Field(default=Path(".roomtrust"), description="state directory (the volume)")
    region: str | None = Field(
        default=None, description="the region this process serves; must match --region when set"
    )
    host: str = Field(default="127.0.0.1", description="listen address (0.0.0.0 in a container)")
    port: int = Field(default=0, ge=0, le=65535, description="listen port; 0 picks a free one")
    public_hosts: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.1", "localhost"],
        min_length=1,
        description="names (and addresses) the server certificate carries; comma-separated",
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset means one SQLite file per service region"
    )
    schema_prefix: str = Field(
        default="", description="prefix of the PostgreSQL schemas (lets stacks share a database)"
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        description="PostgreSQL: connections a process keeps open, and up to twice as many more "
        "under load; every process of every region shares the server's max_connections",
    )
    ca_cert_file: Path | None = Field(
        default=None, description="the region CA's certificate (PEM), e.g. a mounted secret"
    )
    ca_key_file: Path | None = Field(
        default=None, description="the region CA's private key (PEM), e.g. a mounted secret"
    )
    release_key_file: Path | None = Field(
        default=None, description="the firmware release key (Ed25519 PEM), e.g. a mounted secret"
    )
    blob_store: Literal["directory", "azure", "s3"] = Field(
        default="directory",
        description="where firmware images, diagnostics bundles and recordings live",
    )
    blob_directory: Path | None = Field(
        default=None,
        description="directory store: where the containers live (default: under the region's "
        "state directory; a shared volume lets several replicas serve one store)",
    )
    blob_account_url: str | None = Field(
        default=None, description="Azure: the account's blob endpoint (managed identity sign-in)"
    )
    blob_connection_string: str | None = Field(
        default=None, description="Azure: a connection string instead (Azurite, account keys)"
    )
    blob_container_prefix: str = Field(
        default="", description="Azure: prefix of the container names (firmware, diagnostics)"
    )
    blob_bucket: str | None = Field(
        default=None, description="S3: the region's bucket (containers are key prefixes in it)"
    )
    blob_endpoint_url: str | None = Field(
        default=None, description="S3: an endpoint other than AWS's own (moto, MinIO)"
    )
    bus_url: str | None = Field(
        default=None,
        description="meeting: the NATS server of a replicated region (nats://host:4222), through "
        "which replicas reach the owner of each live conference (core NATS, nothing persisted); "
        "unset: one process, its conferences in its own memory",
    )
    advertise_host: str | None = Field(
        default=None,
        description="the address other services reach this process on (a relay's control URL "
        "and certificate); unset: the listen host, or this host's own address on 0.0.0.0",
    )
    media_host: str | None = Field(
        default=None,
        description="relay: the host participants send media to (the region's media load "
        "balancer); unset: the advertised address",
    )
    media_port: int = Field(
        default=0, ge=0, le=65535, description="relay: the UDP media port; 0 picks a free one"
    )
    signaling_url: str | None = Field(
        default=None,
        description="gateways: the region's signaling (wss://host/v1/signaling), trusted by the "
        "system's CAs; unset: the region process under the same state directory",
    )
    sip_port: int = Field(
        default=0, ge=0, le=65535, description="interop gateway: the SIP TLS port; 0 picks one"
    )
    h323_port: int = Field(
        default=0, ge=0, le=65535, description="interop gateway: the H.225.0 TLS port; 0 picks one"
    )
    relay_token_file: Path | None = Field(
        default=None, description="the region's relay control token, e.g. a mounted secret"
    )
    pstn_token_file: Path | None = Field(
        default=None, description="the region's PSTN gateway token, e.g. a mounted secret"
    )
    interop_token_file: Path | None = Field(
        default=None, description="the region's interop gateway token, e.g. a mounted secret"
    )
    recording_key_file: Path | None = Field(
        default=None,
        description="meeting: the region's recording master key (32 bytes), e.g. a mounted "
        "secret; unset: one kept in the state directory",
    )
    tls_min_version: Literal["TLSv1.2", "TLSv1.3"] = Field(
        default="TLSv1.2", description="lowest TLS version the region's servers accept"
    )
    offline_alert_minutes: float = Field(
        default=10, gt=0, description="a DM device silent this long gets an offline alert"
    )
    dm_alert_evaluation_seconds: float = Field(
        default=30.0, gt=0, description="how often the DM leader evaluates the offline alert rule"
    )
    dm_rollout_tick_seconds: float = Field(
        default=1.0, gt=0, description="how often the DM leader lets time pass for its rollouts"
    )
    retention_days: int = 180
    device_certificate_days: int = Field(
        default=397,
        ge=1,
        le=825,
        description="lifetime of a device client certificate; devices renew it before it ends",
    )
    dm_telemetry_retention_days: int = Field(
        default=180,
        ge=1,
        description="DM telemetry readings older than this are purged (the project's choice: "
        "the seed states no DM figure)",
    )
    retention_interval_seconds: float = 3600.0

    def __init__(self, **values: Any) -> None:
        unknown = unknown_variables(os.environ)
        if unknown:
            raise SettingsError(
                "unknown setting(s): "
                + ", ".join(unknown)
                + f" (known: {', '.join(known_variables())})"
            )
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @field_validator("public_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.ca_cert_file is None) != (self.ca_key_file is None):
            raise ValueError("ca_cert_file and ca_key_file: set both (the region CA) or neither")
        if self.blob_store == "azure" and not (
            self.blob_account_url or self.blob_connection_string
        ):
            raise ValueError("blob_store 'azure' needs blob_account_url or blob_connection_string")
        if self.blob_store == "s3" and not self.blob_bucket:
            raise ValueError("blob_store 's3' needs blob_bucket")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


def variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def known_variables() -> list[str]:
    return sorted(variable(name) for name in Settings.model_fields)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ROOMTRUST_ variables of `environ` that neither `Settings` nor a tool reads."""
    known = set(known_variables()) | set(TOOL_VARIABLES)
    return sorted(name for name in environ if name.startswith(PREFIX) and name not in known)


def describe(exc: ValidationError) -> str:
    """One line per bad setting: its variable, what is wrong, and the value given."""
    lines = []
    for error in exc.errors():
        where = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {where[0]!r} (settings file)")
            continue
        name = variable(where[0]) if where else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        given = error.get("input")
        shown = f" (got {given!r})" if where and not isinstance(given, dict) else ""
        lines.append(f"{name}: {message}{shown}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
