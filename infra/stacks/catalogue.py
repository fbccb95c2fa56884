"""The stack files of `infra/stacks/`: their names and configuration, read without Pulumi.

A stack is named `<environment>-<service>-<region>` (`prod-dm-eu`, `ci-meeting-asia`). Its file only
sets configuration; `program.py` turns that configuration into a `DmRegion` or `MeetingRegion`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

STACKS_DIR = Path(__file__).resolve().parent
PROJECT = "roomtrust"
ENVIRONMENTS = ("prod", "staging", "ci")
# which configuration keys hold credentials or the account/subscription they may touch
CREDENTIAL_KEYS = {
    "dm": ("azureSubscriptionId", "azureTenantId", "azureClientId"),
    "meeting": ("awsAccountId", "awsProfile"),
}


class UnknownStack(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"stack: no stack named {name!r} (known: {', '.join(stack_names()) or 'none'})"
        )
        self.field = "stack"


def stack_file(name: str) -> Path:
    return STACKS_DIR / f"Pulumi.{name}.yaml"


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def raw_config(name: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file, keys as written (`roomtrust:region`)."""
    path = stack_file(name)
    if not path.is_file():
        raise UnknownStack(name)
    data = yaml.safe_load(path.read_text()) or {}
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: `config` must be a mapping")
    return config


def project_config(name: str) -> dict[str, Any]:
    """The stack's own settings (the `roomtrust:` namespace) without the prefix."""
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in raw_config(name).items() if k.startswith(prefix)}


def engine_config(name: str) -> dict[str, str]:
    """The configuration as the Pulumi engine hands it to a program: every value a string."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in raw_config(name).items()
    }


def credentials(name: str) -> dict[str, str]:
    """The credential and account settings of a stack."""
    config = project_config(name)
    return {
        key: str(config[key])
        for key in CREDENTIAL_KEYS.get(config.get("service", ""), ())
        if key in config
    }
