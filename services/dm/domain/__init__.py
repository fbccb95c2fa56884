"""The DM domain layer: rules and state changes in plain Python (no web framework)."""
