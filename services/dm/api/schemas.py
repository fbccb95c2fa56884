"""Request bodies of the DM admin API. Unknown fields are refused (extra="forbid")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdminAccount(Strict):
    email: str = Field(max_length=254)
    password: str = Field(min_length=1, max_length=256)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)


class EnterpriseIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    admin: AdminAccount


class LoginIn(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class SiteIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field(min_length=1, max_length=64)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    server_id: str | None = Field(default=None, max_length=64)


class DeviceIn(Strict):
    mac: str = Field(max_length=17)
    serial_number: str = Field(min_length=1, max_length=64)
    model: str = Field(max_length=40)
    site_id: str = Field(max_length=32)
    name: str | None = Field(default=None, max_length=128)
    tags: list[str] = Field(default_factory=list, max_length=20)


class EnrollIn(Strict):
    model: str = Field(max_length=40)
    csr_pem: str = Field(max_length=8192)


class ConfigProfileIn(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 ._-]+$")
    values: dict[str, Any]
    target: dict[str, str]
