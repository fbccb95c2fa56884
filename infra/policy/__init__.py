"""The policy pack of the infrastructure claims.

`checks.py` holds the pure checks (no Pulumi import), `policies.py` wraps them as `pulumi_policy`
policies, and `__main__.py` alone builds the `PolicyPack` (building it starts the analyzer server).
"""
