"""A 4-party call through a real relay, captured on lo with scapy (MT-06, MT-12).

The capture covers the relay's media port and its control port from before anyone is admitted, so it
holds the key delivery too. It must show: the media marker nowhere in the clear, every media packet
authenticating under the keys of the participant it belongs to (so every one carries a tag), and the
keys themselves nowhere in any captured payload (they only crossed inside TLS).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.inet import TCP, UDP

from media_core.sources import MARKER, VideoSource
from media_core.srtp import Direction, SrtpProfile, SrtpSession
from roomtrust.comply.capture import WireCapture, can_capture

PARTIES = 4
AUDIO_FRAMES = 20


@pytest.mark.skipif(not can_capture(), reason="raw sockets on lo need root")
def test_four_party_call_shows_no_clear_media_and_every_packet_is_authenticated(
    relay: Any, join: Callable[..., Any]
) -> None:
    conference = f"cap-{secrets.token_hex(3)}"
    media_port, control_port = relay.media[1], int(relay.ready["port"])
    with WireCapture(ports={media_port, control_port}) as capture:
        profiles = ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"] * 2
        parties = [join(conference, profile) for profile in profiles]
        for p in parties:
            p.drain()
        for p in parties:
            video = VideoSource(ssrc=p.source.ssrc + 1, bitrate_bps=1_000_000, fps=30)
            for _ in range(AUDIO_FRAMES):
                p.send_frame()
            for packet in video.next_frame():
                p.send_plain(packet.build())
        per_sender = AUDIO_FRAMES + len(VideoSource(1, 1_000_000, 30).next_frame())
        for p in parties:
            received = p.receive((PARTIES - 1) * per_sender)
            assert len(received) == (PARTIES - 1) * per_sender
            assert all(MARKER in plain for plain in received)
    packets = capture.stop()

    assert capture.marker_hits(MARKER) == []
    tcp = [
        pkt for pkt in packets if TCP in pkt and control_port in (pkt[TCP].sport, pkt[TCP].dport)
    ]
    assert any(bytes(pkt[TCP].payload) for pkt in tcp), "the key delivery was not captured"
    for p in parties:
        for key in (p.send_key, p.receive_key):
            assert capture.marker_hits(key.key_and_salt) == []
            assert capture.marker_hits(key.encode().encode()) == []
            assert capture.marker_hits(base64.b64encode(key.master_key)[:16]) == []

    by_port = {p.port: p for p in parties}
    checkers: dict[tuple[int, str], SrtpSession] = {}
    media = [pkt for pkt in packets if UDP in pkt]
    inbound = outbound = 0
    for pkt in media:
        datagram = bytes(pkt[UDP].payload)
        if pkt[UDP].dport == media_port:
            party, direction, key = by_port[pkt[UDP].sport], "in", "send"
            inbound += 1
        else:
            party, direction, key = by_port[pkt[UDP].dport], "out", "receive"
            outbound += 1
        keys = party.send_key if key == "send" else party.receive_key
        checker = checkers.setdefault((party.port, direction), SrtpSession(keys, Direction.INBOUND))
        plain = checker.unprotect(datagram)  # raises unless the tag verifies
        assert len(datagram) - len(plain) == SrtpProfile(party.grant["profile"]).tag_length
    assert inbound == PARTIES * (1 + per_sender)
    assert outbound >= PARTIES * (PARTIES - 1) * per_sender
