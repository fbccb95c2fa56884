"""The meeting HTTP and WSS API (FastAPI)."""
