"""The Pulumi project of the cloud regions: `Pulumi.yaml`, one stack file per environment and region."""
