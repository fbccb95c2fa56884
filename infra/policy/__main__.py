"""The policy pack the Pulumi CLI loads: `pulumi preview --policy-pack infra/policy`.

Only this file builds the `PolicyPack`: building it starts the analyzer's gRPC server and never
returns, so tests call the policies from `infra.policy.policies` directly.
"""

from pulumi_policy import PolicyPack

from infra.policy.policies import build_policies

PolicyPack(
    name="roomtrust-claims",
    policies=build_policies(),
    description="roomtrust infrastructure claims IN-01..IN-08, MT-12 and MT-16",
)
