"""uvicorn protocols that fill the ASGI TLS extension with the peer certificate.

uvicorn does not put the client certificate into the ASGI scope. These thin subclasses read it from
the transport's SSL object and add `scope["extensions"]["tls"]` as the ASGI TLS extension describes
(`client_cert_chain` as PEM strings, `tls_version`, `cipher_suite`). Never trust a header for this.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


def _with_tls(app: ASGIApp, transport: Any) -> ASGIApp:
    ext = tls_extension(transport.get_extra_info("ssl_object"))
    if ext is None:
        return app

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})
        scope["extensions"] = {**(scope["extensions"] or {}), "tls": ext}
        await app(scope, receive, send)

    return wrapped


class TlsHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_tls(self.app, transport)  # type: ignore[arg-type,assignment]


class TlsWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_tls(self.app, transport)  # type: ignore[arg-type,assignment]


def peer_cert_pem(scope: Scope) -> str | None:
    """The client certificate of this request, or None (no TLS, or no certificate presented)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0] if chain else None
