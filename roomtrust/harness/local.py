"""What tests and features may know of the local stack beyond its description: the module each
service runs as and its regions (the infrastructure claims compare them with the cloud programs)."""

from __future__ import annotations

from roomtrust.stack.launcher import SERVICES


def self_hosted(service: str) -> tuple[str, tuple[str, ...]]:
    """(module run with `python -m`, regions) of a service of the self-hosted stack."""
    try:
        return SERVICES[service]
    except KeyError:
        raise KeyError(
            f"the self-hosted stack runs no {service!r} (it runs {', '.join(SERVICES)})"
        ) from None
