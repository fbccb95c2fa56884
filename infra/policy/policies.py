"""`pulumi_policy` wrappers around the pure checks: one stack validation policy per claim.

The engine hands a policy the stack's resources; `graph_from_policy_resources` turns them into the
same graph document that mock snapshots produce, so one set of checks serves both.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.checks import CHECKS, Check


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def graph_from_policy_resources(resources: list[PolicyResource], stack: str = "") -> dict[str, Any]:
    """The graph document of the resources a stack validation receives."""
    nodes: dict[str, dict[str, Any]] = {}
    for r in resources:
        provider = r.provider
        nodes[r.urn] = {
            "urn": r.urn,
            "type": r.resource_type,
            "name": r.name,
            "custom": not _is_component(r),
            "parent": r.parent.urn if r.parent is not None else r.opts.parent or None,
            "provider": provider.urn if provider is not None else None,
            "inputs": _plain(dict(r.props)),
            "region": None,
        }
        if provider is not None and provider.urn not in nodes:
            props = _plain(dict(provider.props))
            nodes[provider.urn] = {
                "urn": provider.urn,
                "type": provider.resource_type,
                "name": provider.name,
                "custom": True,
                "parent": None,
                "provider": None,
                "inputs": props,
                "region": None,
            }
    for node in nodes.values():
        parent = node["parent"]
        if parent and "::pulumi:pulumi:Stack::" in parent:
            node["parent"] = None
        provider_node = nodes.get(node["provider"] or "")
        if provider_node is not None:
            inputs = provider_node["inputs"]
            node["region"] = inputs.get("region") or inputs.get("location")
    return {"stack": stack, "resources": sorted(nodes.values(), key=lambda n: n["urn"])}


def _is_component(resource: PolicyResource) -> bool:
    t = resource.resource_type
    return t.startswith("roomtrust:") or t == "pulumi:pulumi:Stack"


def _validator(check: Check) -> Any:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        document = graph_from_policy_resources(
            [r for r in args.resources if r.resource_type != "pulumi:pulumi:Stack"]
        )
        result = check(document)
        for violation in result.violations:
            report_violation(violation.message, violation.urn)

    return validate


def build_policies(
    enforcement: EnforcementLevel = EnforcementLevel.MANDATORY,
) -> list[Policy]:
    """One mandatory stack policy per check (the IN-* claims plus MT-12 and MT-16)."""
    return [
        StackValidationPolicy(
            name=f"roomtrust-{claim.lower()}",
            description=f"{claim}: {check.title}",
            validate=_validator(check),
            enforcement_level=enforcement,
        )
        for claim, check in CHECKS.items()
    ]
