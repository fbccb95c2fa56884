"""The DM API's routes, one router per area; `services.dm.api.app` includes them all."""
