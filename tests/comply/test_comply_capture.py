"""The loopback wire capture: a plaintext marker on the wire is found (the negative control of
every "nothing in the clear" scenario), the same marker inside TLS is not, and the capture is saved
as a pcap that reads back packet for packet."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest
from scapy.all import rdpcap

from roomtrust.comply.capture import WireCapture, can_capture
from roomtrust.comply.controls import (
    TlsControlServer,
    send_over_tls,
    send_plaintext_tcp,
    send_plaintext_udp,
)

pytestmark = pytest.mark.skipif(not can_capture(), reason="capturing on lo needs root")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def marker() -> bytes:
    return b"RT-MARKER-" + secrets.token_hex(8).encode()


def test_a_plaintext_udp_marker_is_found(tmp_path: Path) -> None:
    port, secret = free_udp_port(), marker()
    with WireCapture(ports={port}) as capture:
        send_plaintext_udp(port, b"rtp-ish header " + secret)
    hits = capture.marker_hits(secret)
    assert [h.flow.dport for h in hits] == [port]
    assert capture.summary(secret)["packets"] == 3  # each datagram once, not twice


def test_a_marker_split_across_tcp_segments_is_found_in_the_stream() -> None:
    secret = marker()
    with WireCapture() as capture:
        port = send_plaintext_tcp(b"x" * 70000 + secret)  # larger than one loopback segment
    hits = capture.marker_hits(secret)
    assert any(h.flow.dport == port for h in hits)
    assert any(c.dport == port for c in capture.connections())


def test_the_same_marker_inside_tls_is_not_found(tmp_path: Path) -> None:
    secret = marker()
    with TlsControlServer.strong(tmp_path) as server, WireCapture(ports={server.port}) as capture:
        send_over_tls(server, b"chat: " + secret)
    assert capture.flows(), "nothing was captured, so the absence of the marker proves nothing"
    assert capture.marker_hits(secret) == []


def test_the_capture_is_saved_as_a_pcap(tmp_path: Path) -> None:
    port = free_udp_port()
    with WireCapture(ports={port}) as capture:
        send_plaintext_udp(port, marker(), count=5)
    path = capture.save(tmp_path / "evidence" / "scenario.pcap")
    assert len(rdpcap(str(path))) == len(capture.packets) == 5


def test_an_empty_marker_is_refused() -> None:
    with pytest.raises(ValueError):
        WireCapture().marker_hits(b"")
