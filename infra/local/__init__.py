"""The local stack: every service region as a local process on 127.0.0.1 with TLS (the self-hosted path)."""
