"""The interop gateway's SRTP bridge, without I/O, with real libsrtp sessions on both sides."""

from __future__ import annotations

import secrets

from media_core.rtp import RtpPacket
from media_core.sources import PCMU
from media_core.srtp import Direction, KeyMaterial, SrtpProfile, SrtpSession
from protocol.signaling import MessageType
from services.meeting.interop.bridge import SrtpBridge

PROFILE = SrtpProfile.AES_CM_128_HMAC_SHA1_80
CALLER, RELAY = ("192.0.2.10", 40000), ("127.0.0.1", 47000)


def key() -> KeyMaterial:
    return KeyMaterial.generate(PROFILE, secrets.token_bytes)


def grant(send: KeyMaterial, receive: KeyMaterial) -> dict[str, object]:
    return {
        "type": MessageType.MEDIA_KEYS.value,
        "profile": PROFILE.value,
        "media": {"host": RELAY[0], "port": RELAY[1]},
        "send_key": send.encode(),
        "receive_key": receive.encode(),
        "participant_id": "p-1",
        "conference_id": "sa-0123456789abcdef",
        "relay": "relay-1",
    }


def rtp(seq: int, payload_type: int = PCMU, ssrc: int = 0xCAFE) -> bytes:
    return RtpPacket(payload_type, seq, seq * 160, ssrc, bytes([seq % 256]) * 160).build()


class Call:
    """The caller's SRTP, the relay's SRTP, and the bridge between them."""

    def __init__(self, with_grant: bool = True) -> None:
        self.from_caller, self.to_caller = key(), key()
        self.relay_send, self.relay_receive = key(), key()  # the gateway's send/receive keys
        self.bridge = SrtpBridge(0xB41D6E, self.from_caller, self.to_caller, CALLER)
        if with_grant:
            assert self.bridge.endpoint.handle_message(grant(self.relay_send, self.relay_receive))
        self.caller_out = SrtpSession(self.from_caller, Direction.OUTBOUND)
        self.caller_in = SrtpSession(self.to_caller, Direction.INBOUND)
        self.relay_in = SrtpSession(self.relay_send, Direction.INBOUND)
        self.relay_out = SrtpSession(self.relay_receive, Direction.OUTBOUND)


def test_caller_srtp_reaches_the_relay_re_stamped_and_protected() -> None:
    call = Call()
    out = call.bridge.caller_datagram(CALLER, call.caller_out.protect(rtp(1)))
    assert len(out) == 1 and out[0].address == RELAY
    assert out[0].data[12:] != rtp(1)[12:]  # not in the clear on the conference side either
    packet = RtpPacket.parse(call.relay_in.unprotect(out[0].data))
    assert packet.ssrc == 0xB41D6E and packet.payload == RtpPacket.parse(rtp(1)).payload
    assert call.bridge.counters.to_conference == 1


def test_plain_rtp_from_the_caller_is_dropped() -> None:
    call = Call()
    assert call.bridge.caller_datagram(CALLER, rtp(1)) == []
    stranger = SrtpSession(key(), Direction.OUTBOUND)
    assert call.bridge.caller_datagram(CALLER, stranger.protect(rtp(2))) == []
    assert call.bridge.caller_datagram(CALLER, b"\x80") == []
    assert call.bridge.counters.dropped_caller_unauthenticated == 3
    assert call.bridge.counters.to_conference == 0


def test_only_pcmu_goes_on_and_rtcp_stays_on_the_callers_leg() -> None:
    call = Call()
    assert call.bridge.caller_datagram(CALLER, call.caller_out.protect(rtp(1, 96))) == []
    assert call.bridge.counters.dropped_caller_not_pcmu == 1
    receiver_report = bytes((0x81, 201, 0, 1)) + (0xCAFE).to_bytes(4, "big")
    sent = call.bridge.caller_datagram(CALLER, call.caller_out.protect_rtcp(receiver_report))
    assert sent == [] and call.bridge.counters.dropped_caller_rtcp == 1


def test_without_conference_keys_nothing_is_sent() -> None:
    call = Call(with_grant=False)
    assert call.bridge.caller_datagram(CALLER, call.caller_out.protect(rtp(1))) == []
    assert call.bridge.counters.dropped_no_conference_keys == 1


def test_the_callers_address_moves_only_with_an_authenticated_packet() -> None:
    call = Call()
    moved = ("192.0.2.99", 41000)
    call.bridge.caller_datagram(moved, rtp(1))  # plain: no latch
    assert call.bridge.caller == CALLER
    call.bridge.caller_datagram(moved, call.caller_out.protect(rtp(2)))
    assert call.bridge.caller == moved


def test_conference_media_reaches_the_caller_under_the_callers_key() -> None:
    call = Call()
    out = call.bridge.conference_datagram(RELAY, call.relay_out.protect(rtp(5, ssrc=77)), 0.0)
    assert len(out) == 1 and out[0].address == CALLER
    packet = RtpPacket.parse(call.caller_in.unprotect(out[0].data))
    assert packet.ssrc == 77 and packet.sequence_number == 5
    # not from the relay, or not under the relay's key: dropped
    assert (
        call.bridge.conference_datagram(("127.0.0.1", 1), call.relay_out.protect(rtp(6)), 0) == []
    )
    assert call.bridge.conference_datagram(RELAY, rtp(7), 0.0) == []
    assert call.bridge.counters.to_caller == 1


def test_new_caller_keys_replace_the_old_ones() -> None:
    call = Call()
    new_from, new_to = key(), key()
    call.bridge.set_caller_keys(new_from, new_to, None)
    assert call.bridge.caller_datagram(CALLER, call.caller_out.protect(rtp(1))) == []
    fresh = SrtpSession(new_from, Direction.OUTBOUND)
    assert len(call.bridge.caller_datagram(CALLER, fresh.protect(rtp(2)))) == 1
