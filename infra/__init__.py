"""Deployment: Pulumi programs per region (Azure DM, AWS meetings), the policy pack, and the local stack."""
