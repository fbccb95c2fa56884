"""The TLS policy of every roomtrust endpoint and client (DM-11, MT-06, IN-02).

Servers accept TLS 1.2 and 1.3 only. For TLS 1.2 only ECDHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305) is offered, so a client that offers only CBC suites gets no handshake.
TLS 1.3 suites are all AEAD by definition and are left at OpenSSL's defaults.
"""

from __future__ import annotations

import ssl
from pathlib import Path

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"

MINIMUM_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def harden(ctx: ssl.SSLContext, minimum: str = "TLSv1.2") -> ssl.SSLContext:
    """Apply the policy to a context: the version floor, the TLS 1.2 suites, no compression and no
    renegotiation."""
    if minimum not in MINIMUM_VERSIONS:
        raise ValueError(f"minimum TLS version {minimum!r}: only TLSv1.2 or TLSv1.3")
    ctx.minimum_version = MINIMUM_VERSIONS[minimum]
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def server_context(
    cert_file: Path | str,
    key_file: Path | str,
    client_ca_file: Path | str | None = None,
    minimum: str = "TLSv1.2",
) -> ssl.SSLContext:
    """A server context; with `client_ca_file` it asks for (but does not require) a client
    certificate signed by that CA, so one port serves both mTLS device calls and token-authenticated
    admin calls. Routes that need a device identity check for the certificate themselves.
    `minimum` (ROOMTRUST_TLS_MIN_VERSION) can raise the floor to TLS 1.3, never lower it."""
    ctx = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), minimum)
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(client_ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(
    ca_file: Path | str, cert_file: Path | str | None = None, key_file: Path | str | None = None
) -> ssl.SSLContext:
    """A client context that trusts only the given CA bundle, optionally presenting a certificate."""
    ctx = harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file)))
    if cert_file is not None:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
