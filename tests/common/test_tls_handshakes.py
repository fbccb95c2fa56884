"""TLS policy of every DM port, checked with the system `openssl s_client` (DM-11).

TLS 1.1 is offered with `-cipher DEFAULT:@SECLEVEL=0`, or the client would refuse on its own and the
check would pass without the server having been asked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from protocol.stack import Stack

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def s_client(port: int, ca: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca), *args],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )


def negotiated(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "Cipher is (NONE)" not in result.stdout


def stack_ports(stack: Stack) -> list[tuple[int, Path]]:
    ports = [(int(ep.url.rsplit(":", 1)[1]), ep.ca_file) for ep in stack.endpoints()]
    assert ports, "no endpoint in the stack to probe"
    return ports


def test_tls11_is_refused_even_when_the_client_allows_it(live_stack: Stack) -> None:
    for port, ca in stack_ports(live_stack):
        result = s_client(port, ca, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert not negotiated(result), f"port {port} accepted TLS 1.1"


def test_the_weak_client_settings_do_work_against_a_tls11_server(tmp_path: Path) -> None:
    """Positive control: the probe above can succeed, so its failure means something."""
    from services.common.ca import RegionCA

    ca = RegionCA.create("control")
    cert, key = ca.issue_server_cert(["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    server = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "1",
            "-cert",
            str(tmp_path / "c.pem"),
            "-key",
            str(tmp_path / "k.pem"),
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        while "ACCEPT" not in line:
            line = server.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[-1]) if ":" in line else None
        if port is None:
            pytest.fail(f"cannot read the control server's port from {line!r}")
        result = s_client(port, tmp_path / "ca.pem", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert negotiated(result), result.stdout[-500:]
    finally:
        server.kill()
        server.wait()


def test_tls12_with_a_strong_suite_is_accepted(live_stack: Stack) -> None:
    for port, ca in stack_ports(live_stack):
        result = s_client(port, ca, "-tls1_2")
        assert negotiated(result), f"port {port}: {result.stdout[-300:]}"
        assert "ECDHE" in result.stdout and ("GCM" in result.stdout or "CHACHA20" in result.stdout)


def test_tls12_offering_only_cbc_suites_is_refused(live_stack: Stack) -> None:
    for port, ca in stack_ports(live_stack):
        result = s_client(
            port,
            ca,
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:AES128-SHA",
        )
        assert not negotiated(result), f"port {port} accepted a CBC suite"


def test_tls13_is_accepted(live_stack: Stack) -> None:
    for port, ca in stack_ports(live_stack):
        assert negotiated(s_client(port, ca, "-tls1_3")), f"port {port} refused TLS 1.3"
