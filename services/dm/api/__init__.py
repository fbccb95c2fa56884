"""The DM HTTP API: a thin FastAPI layer over the domain."""
