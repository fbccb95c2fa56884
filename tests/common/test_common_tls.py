"""The TLS floor of the server context: TLS 1.2 by default, raised to 1.3 by
ROOMTRUST_TLS_MIN_VERSION, and never lowered below 1.2."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.ca import RegionCA
from services.common.settings import Settings, SettingsError
from services.common.tls import client_context, server_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = RegionCA.create("floor-test")
    cert, key = ca.issue_server_cert(["127.0.0.1"])
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    for path, data in zip(paths, (ca.cert_pem, cert, key), strict=True):
        path.write_bytes(data)
    return paths


def _serve_once(ctx: ssl.SSLContext) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with listener:
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.fixture
def handshake(pki: tuple[Path, Path, Path]) -> Callable[[str, ssl.TLSVersion], str]:
    ca, cert, key = pki

    def run(minimum: str, client_max: ssl.TLSVersion) -> str:
        port, thread = _serve_once(server_context(cert, key, minimum=minimum))
        client = client_context(ca)
        client.maximum_version = client_max
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                return str(tls.version())
        finally:
            thread.join(timeout=5)

    return run


def test_the_default_floor_accepts_tls12(handshake: Callable[[str, ssl.TLSVersion], str]) -> None:
    assert handshake("TLSv1.2", ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


def test_a_tls13_floor_refuses_a_tls12_client(
    handshake: Callable[[str, ssl.TLSVersion], str],
) -> None:
    with pytest.raises(ssl.SSLError):
        handshake("TLSv1.3", ssl.TLSVersion.TLSv1_2)
    assert handshake("TLSv1.3", ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_the_floor_cannot_be_lowered(pki: tuple[Path, Path, Path]) -> None:
    _, cert, key = pki
    with pytest.raises(ValueError, match=r"only TLSv1\.2 or TLSv1\.3"):
        server_context(cert, key, minimum="TLSv1.1")


def test_the_setting_names_the_field_it_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMTRUST_TLS_MIN_VERSION", "TLSv1.1")
    with pytest.raises(SettingsError, match="ROOMTRUST_TLS_MIN_VERSION"):
        Settings()
    monkeypatch.setenv("ROOMTRUST_TLS_MIN_VERSION", "TLSv1.3")
    assert Settings().tls_min_version == "TLSv1.3"
