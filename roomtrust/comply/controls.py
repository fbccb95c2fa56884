"""Fixture targets for the negative and positive controls of the compliance checks.

Each is a small, deliberately built server that a test starts and stops; none of them is a switch
in the roomtrust services. `TlsControlServer.weak()` accepts TLS 1.0 and every cipher suite, so the
TLS probe must flag it; `TlsControlServer.strong()` uses the services' own TLS context.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from pathlib import Path
from types import TracebackType

from services.common.ca import RegionCA
from services.common.tls import server_context


def _certificate(directory: Path) -> tuple[Path, Path, Path]:
    ca = RegionCA.create("control")
    cert, key = ca.issue_server_cert(["127.0.0.1"])
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "server.pem", directory / "server.key", directory / "ca.pem")
    for path, data in zip(paths, (cert, key, ca.cert_pem), strict=True):
        path.write_bytes(data)
    return paths


class TlsControlServer:
    """A TLS server on 127.0.0.1 that completes handshakes and hangs up, in a thread."""

    def __init__(self, context: ssl.SSLContext, ca_file: Path) -> None:
        self.context = context
        self.ca_file = ca_file
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @classmethod
    def weak(cls, directory: Path) -> TlsControlServer:
        """Accepts TLS 1.0 up to 1.2 with every suite OpenSSL has (CBC, static RSA, ...)."""
        cert, key, ca = _certificate(directory)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.load_cert_chain(cert, key)
        return cls(ctx, ca)

    @classmethod
    def strong(cls, directory: Path) -> TlsControlServer:
        """The same TLS context every roomtrust endpoint uses."""
        cert, key, ca = _certificate(directory)
        return cls(server_context(cert, key), ca)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with (
                contextlib.suppress(OSError),
                self.context.wrap_socket(conn, server_side=True) as tls,
            ):
                # wait for the client's close, then close cleanly, as a real server would
                while tls.recv(4096):
                    pass
                tls.unwrap()
            conn.close()

    def __enter__(self) -> TlsControlServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


def send_plaintext_udp(port: int, payload: bytes, count: int = 3) -> None:
    """Datagrams in the clear on loopback: the capture's negative control."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            sock.sendto(payload, ("127.0.0.1", port))


def send_plaintext_tcp(payload: bytes) -> int:
    """One TCP connection on loopback carrying `payload` in the clear; returns the server port."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port: int = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = listener.accept()
            with conn:
                client.sendall(payload)
                received = b""
                while len(received) < len(payload):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk
    return port


def send_over_tls(server: TlsControlServer, payload: bytes) -> None:
    """The same payload inside TLS to a control server (which may hang up right after)."""
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        contextlib.suppress(OSError),
    ):
        tls.sendall(payload)
