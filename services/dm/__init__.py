"""The device management (DM) service: enterprises, deployment, enrollment, device sessions,
telemetry limited to the DM-09 categories, health alerts."""
