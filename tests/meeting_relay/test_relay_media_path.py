"""Media through a real relay process: byte-exact round trip, scapy-crafted bad packets, removal."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.sendrecv import send

from media_core.rtp import HeaderExtension, RtpPacket
from media_core.srtp import Direction, KeyMaterial, SrtpError, SrtpProfile, SrtpSession
from roomtrust.comply.capture import WireCapture, can_capture

needs_root = pytest.mark.skipif(not can_capture(), reason="raw sockets on lo need root")


def spoof(packets: list[tuple[int, bytes]], relay_port: int) -> None:
    """Send datagrams to the relay from the given source ports, crafted with scapy."""
    for port, data in packets:
        datagram = IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=port, dport=relay_port)
        send(datagram / Raw(data), iface="lo", verbose=False)


@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_srtp_packet_survives_the_relay_byte_exact(join: Callable[..., Any], profile: str) -> None:
    conference = f"rt-{secrets.token_hex(3)}"
    a = join(conference, profile)
    b = join(conference, profile)
    a.drain()
    next_sequence = a.source.next_frame()[0].sequence_number
    plain = RtpPacket(
        96,
        next_sequence,
        123456,
        a.source.ssrc,
        b"round trip " * 20,
        marker=True,
        csrcs=(7,),
        extension=HeaderExtension.one_byte({3: b"\x01\x02"}),
    ).build()
    wire = a.send_plain(plain)
    assert b.receive(1) == [plain]
    assert b.drain() == 0
    assert wire[:12] == plain[:12] and wire[12:] != plain[12:]


@needs_root
def test_crafted_bad_packets_never_crash_the_relay_and_each_kind_is_counted(
    relay: Any,
    join: Callable[..., Any],
    relay_counters: Callable[[], dict[str, int]],
    wait_for: Callable[..., bool],
) -> None:
    conference = f"bad-{secrets.token_hex(3)}"
    a = join(conference)
    b = join(conference)
    a.drain()
    media_port = relay.media[1]
    stranger = SrtpSession(
        KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes),
        Direction.OUTBOUND,
    )
    original = a.source.next_frame()[0].build()
    wire_copy = a.send_plain(original)  # forwarded once; replayed below
    assert b.receive(1) == [original]

    def frame() -> bytes:
        return a.source.next_frame()[0].build()

    def forged() -> bytes:
        data = bytearray(a.out.protect(frame()))
        data[-1] ^= 0x5A
        return bytes(data)

    good = a.out.protect(frame())
    kinds: dict[str, list[tuple[int, bytes]]] = {
        "dropped_truncated": [(a.port, good[:9]), (a.port, good[:12] + b"\x00" * 4)],
        "dropped_bad_version": [(a.port, bytes([0x40 | (good[0] & 0x3F)]) + good[1:])] * 2,
        "dropped_bad_tag": [(a.port, forged()) for _ in range(3)],
        "dropped_replay": [(a.port, wire_copy)] * 3,
        "dropped_oversized": [(a.port, b"\x80\x00" + secrets.token_bytes(1498))] * 2,
        "dropped_plain_rtp": [(a.port, frame()) for _ in range(2)],
        "dropped_unknown_source": [(40001, stranger.protect(frame())) for _ in range(2)],
    }
    before = relay_counters()
    for packets in kinds.values():
        spoof(packets, media_port)
    expected = {kind: before[kind] + len(packets) for kind, packets in kinds.items()}
    assert wait_for(lambda: all(relay_counters()[k] >= v for k, v in expected.items()))
    after = relay_counters()
    assert {k: after[k] for k in kinds} == expected
    assert after["internal_errors"] == 0
    assert relay.alive()
    # nothing bad was forwarded, and the relay still forwards good media
    assert b.drain() == 0
    fresh = a.send_frame()
    assert b.receive(1) == [fresh]


@needs_root
def test_removed_participants_old_keys_open_nothing_sent_after_removal(
    relay: Any,
    control: httpx.Client,
    join: Callable[..., Any],
    relay_counters: Callable[[], dict[str, int]],
    wait_for: Callable[..., bool],
) -> None:
    conference = f"rm-{secrets.token_hex(3)}"
    a, b, c = join(conference), join(conference), join(conference)
    for p in (a, b, c):
        p.drain()
    old_send, old_receive = c.send_key, c.receive_key
    unknown_before = relay_counters()["dropped_unknown_source"]

    with WireCapture(ports={relay.media[1]}) as capture:
        assert control.delete(f"/v1/participants/{c.grant['participant_id']}").status_code == 200
        grants = control.post(f"/v1/conferences/{conference}/rekey", json={}).json()
        for p in (a, b):
            p.rekey(grants["participants"][p.grant["participant_id"]])
        for _ in range(10):
            a.send_frame()
            b.send_frame()
        for _ in range(5):
            c.send_frame()  # still sending with its old keys
        assert len(a.receive(10)) == 10 and len(b.receive(10)) == 10
        assert wait_for(lambda: relay_counters()["dropped_unknown_source"] >= unknown_before + 5)
    captured = [pkt for pkt in capture.stop() if UDP in pkt]
    assert sum(1 for pkt in captured if pkt[UDP].sport == c.port) == 5
    # everything the others and the relay sent after the removal (c's own attempts aside)
    packets = [bytes(pkt[UDP].payload) for pkt in captured if pkt[UDP].sport != c.port]
    assert len(packets) >= 20 + 20  # a and b to the relay, and the relay to them
    assert c.drain() == 0
    for data in packets:
        for keys in (old_send, old_receive):
            with pytest.raises(SrtpError):
                SrtpSession(keys, Direction.INBOUND).unprotect(data)
