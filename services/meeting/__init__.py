"""services/meeting."""
