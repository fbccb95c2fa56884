"""SimPy capacity models that drive the real sans-IO agents and domain logic in simulated time."""
