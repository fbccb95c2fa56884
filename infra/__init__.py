"""Deployment: Pulumi programs per region (Azure DM, AWS meetings) and the policy pack. The local
stack's launcher is `roomtrust.stack`."""
