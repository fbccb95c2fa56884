"""Step definitions of the features, one module per area."""
