"""The stdlib TLS probe: it flags a deliberately weak server (positive control), passes the
services' own TLS context and every endpoint of the live stack, never passes an endpoint it could
not reach, and its verdicts agree with `openssl s_client -tls1_1` / `-tls1_2` on the same ports.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.stack import Stack
from roomtrust.comply.controls import TlsControlServer
from roomtrust.comply.targets import LocalTarget
from roomtrust.comply.tlsprobe import ACCEPTED, ERROR, attempts, probe


@pytest.fixture
def weak_server(tmp_path: Path) -> Iterator[TlsControlServer]:
    with TlsControlServer.weak(tmp_path / "weak") as server:
        yield server


@pytest.fixture
def strong_server(tmp_path: Path) -> Iterator[TlsControlServer]:
    with TlsControlServer.strong(tmp_path / "strong") as server:
        yield server


def test_the_weak_control_server_is_flagged(weak_server: TlsControlServer) -> None:
    report = probe("127.0.0.1", weak_server.port)
    assert not report.strong
    flagged = {finding.split(":")[0] for finding in report.findings()}
    assert {"TLS 1.0", "TLS 1.1", "TLS 1.2 CBC (no AEAD)"} <= flagged


def test_the_services_tls_context_passes(strong_server: TlsControlServer) -> None:
    report = probe("127.0.0.1", strong_server.port)
    assert report.findings() == []
    assert report.result("TLS 1.0").outcome == "refused"
    assert report.result("TLS 1.2 ECDHE AEAD").outcome == ACCEPTED


def test_an_endpoint_that_cannot_be_reached_never_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        report = probe("127.0.0.1", port, timeout=2)
    assert not report.strong
    assert all(r.outcome == ERROR for r in report.results)


def test_a_plain_tcp_server_that_speaks_no_tls_fails() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer_in_plaintext() -> None:
            for _ in range(len(attempts())):
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        server = threading.Thread(target=answer_in_plaintext, daemon=True)
        server.start()
        report = probe("127.0.0.1", port, timeout=5)
        server.join(timeout=10)
    assert not report.strong
    assert any("TLS 1.2 ECDHE AEAD" in f for f in report.findings())


def test_every_live_stack_endpoint_passes(live_stack: Stack) -> None:
    endpoints = LocalTarget(live_stack.home, live_stack).endpoints()
    assert endpoints, "the live stack published no endpoint"
    for endpoint in endpoints:
        assert probe(endpoint.host, endpoint.port).findings() == [], endpoint.name


# --- agreement with the system OpenSSL client -------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def s_client_negotiates(port: int, *args: str) -> bool:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    # "New, TLSv1.2, Cipher is ECDHE-..." once a handshake completed; "Cipher is (NONE)" otherwise
    return re.search(r"^New, .*Cipher is (?!\(NONE\))", result.stdout, re.MULTILINE) is not None


def assert_agreement(port: int) -> tuple[bool, bool]:
    report = probe("127.0.0.1", port)
    tls11 = s_client_negotiates(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    tls12 = s_client_negotiates(port, "-tls1_2")
    assert report.accepts_version("TLSv1.1") == tls11, f"port {port}: TLS 1.1 verdicts differ"
    assert report.accepts_version("TLSv1.2") == tls12, f"port {port}: TLS 1.2 verdicts differ"
    return tls11, tls12


@needs_openssl
def test_openssl_agrees_on_the_weak_control(weak_server: TlsControlServer) -> None:
    assert assert_agreement(weak_server.port) == (True, True)


@needs_openssl
def test_openssl_agrees_on_the_strong_control(strong_server: TlsControlServer) -> None:
    assert assert_agreement(strong_server.port) == (False, True)


@needs_openssl
def test_openssl_agrees_on_every_live_stack_port(live_stack: Stack) -> None:
    endpoints = LocalTarget(live_stack.home, live_stack).endpoints()
    assert endpoints, "the live stack published no endpoint"
    for endpoint in endpoints:
        assert assert_agreement(endpoint.port) == (False, True), endpoint.name
