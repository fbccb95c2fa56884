"""Settings from the environment (ROOMTRUST_*) and an optional YAML file.

The environment wins over the file, the file over the defaults. `ROOMTRUST_SETTINGS_FILE` names the
file; without it `.roomtrust/settings.yaml` is read when present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from protocol.regions import DM_REGIONS, MEETING_REGIONS

__all__ = ["DM_REGIONS", "MEETING_REGIONS", "Settings", "load_settings"]


class _YamlFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("ROOMTRUST_SETTINGS_FILE", ".roomtrust/settings.yaml"))
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: settings file must hold a mapping")
        return data


class Settings(BaseSettings):
    """Process-wide settings; every field can be set as ROOMTRUST_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="ROOMTRUST_", extra="ignore")

    home: Path = Field(default=Path(".roomtrust"), description="state directory of the local stack")
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset means one SQLite file per service region"
    )
    host: str = "127.0.0.1"
    tls_min_version: Literal["TLSv1.2", "TLSv1.3"] = Field(
        default="TLSv1.2", description="lowest TLS version the region's servers accept"
    )
    offline_alert_minutes: int = 10
    retention_days: int = 180
    retention_interval_seconds: float = 3600.0

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


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
