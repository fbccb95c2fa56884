"""TLS contexts for every roomtrust endpoint and client (DM-11, MT-06, IN-02).

The policy (versions, TLS 1.2 suites, server and client contexts) is the wire contract's:
`protocol.tls`. This module keeps the names the services import.
"""

from __future__ import annotations

from protocol.tls import MINIMUM_VERSIONS, TLS12_CIPHERS, client_context, server_context

__all__ = ["MINIMUM_VERSIONS", "TLS12_CIPHERS", "client_context", "server_context"]
