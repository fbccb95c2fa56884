"""The PSTN bridge, sans-IO, against the relay core: a plain G.711 phone leg in an SRTP call."""

from __future__ import annotations

import secrets
from typing import Any

from media_core import g711
from media_core.endpoint import MediaEndpoint
from media_core.relay_core import ParticipantKeys, RelayCore
from media_core.rtp import RtpPacket
from media_core.sources import AudioSource
from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.pstn.bridge import PstnBridge

CM = SrtpProfile.AES_CM_128_HMAC_SHA1_80
RELAY = ("127.0.0.1", 50000)
PHONE = ("127.0.0.1", 41000)


def admit(core: RelayCore, endpoint: MediaEndpoint, pid: str) -> None:
    keys = ParticipantKeys(
        KeyMaterial.generate(CM, secrets.token_bytes), KeyMaterial.generate(CM, secrets.token_bytes)
    )
    core.add_participant(pid, "c", keys)
    endpoint.handle_message(
        {
            "type": "media.keys",
            "profile": CM.value,
            "send_key": keys.send.encode(),
            "receive_key": keys.receive.encode(),
            "media": {"host": RELAY[0], "port": RELAY[1]},
        }
    )


def to_relay(core: RelayCore, sender: tuple[str, int], data: bytes) -> list[Any]:
    return core.datagram_received(sender, data)


def test_phone_packets_need_keys_pcmu_and_the_phone_address() -> None:
    bridge = PstnBridge(ssrc=7, phone_ssrc=8)
    phone = AudioSource(ssrc=99, tone_hz=1000)
    assert bridge.phone_datagram(PHONE, phone.next_frame()[0].build()) == []  # no keys yet
    admit(RelayCore(), bridge.endpoint, "gw")
    video = RtpPacket(96, 1, 0, 99, b"v" * 100).build()
    assert bridge.phone_datagram(PHONE, video) == []
    assert bridge.phone_datagram(PHONE, b"\x40" + bytes(30)) == []
    assert bridge.phone_datagram(("127.0.0.1", 41001), phone.next_frame()[0].build()) == []
    out = bridge.phone_datagram(PHONE, phone.next_frame()[0].build())
    assert len(out) == 1 and out[0].address == RELAY
    assert bridge.counters.as_dict() == {
        "from_phone": 2,  # the one without keys too
        "to_conference": 1,
        "from_conference": 0,
        "to_phone": 0,
        "dropped_phone_malformed": 1,
        "dropped_phone_not_pcmu": 1,
        "dropped_phone_stranger": 1,
        "dropped_phone_no_keys": 1,
    }


def test_the_phone_hears_a_mix_of_the_conference_and_the_conference_hears_the_phone() -> None:
    core = RelayCore()
    bridge = PstnBridge(ssrc=7, phone_ssrc=8, jitter_delay=0.04)
    admit(core, bridge.endpoint, "gw")
    speakers = {440: ("127.0.0.1", 40000), 660: ("127.0.0.1", 40002)}
    ends = {hz: MediaEndpoint(jitter_delay=None) for hz in speakers}
    for hz, end in ends.items():
        admit(core, end, f"p{hz}")
    sources = {hz: AudioSource(ssrc=hz, tone_hz=hz) for hz in speakers}
    phone_source = AudioSource(ssrc=99, tone_hz=1000, with_audio_level=False)
    heard: list[int] = []
    conference_heard: dict[int, list[int]] = {hz: [] for hz in speakers}
    for i in range(30):
        now = i * 0.02
        for out in bridge.phone_datagram(PHONE, phone_source.next_frame()[0].build()):
            for send in to_relay(core, ("127.0.0.1", 45000), out.data):
                for hz, address in speakers.items():
                    if send.address == address:
                        packet = ends[hz].datagram_received(RELAY, send.data, now)
                        assert packet is not None and packet.ssrc == 7  # the bridge's own SSRC
                        conference_heard[hz] += g711.decode(packet.payload)
        for hz, address in speakers.items():
            out_ = ends[hz].protect(sources[hz].next_frame()[0].build())
            assert out_ is not None
            for send in to_relay(core, address, out_.data):
                bridge.conference_datagram(RELAY, send.data, now)
        for out in bridge.tick(now):
            assert out.address == PHONE
            packet = RtpPacket.parse(out.data)  # plain RTP on the phone leg
            assert packet.payload_type == 0 and packet.ssrc == 8
            heard += g711.decode(packet.payload)
    assert len(heard) >= 20 * 160
    assert g711.tone_level(heard, 440) > 4000 and g711.tone_level(heard, 660) > 4000
    assert g711.tone_level(heard, 1000) < 100  # the phone does not hear itself
    for samples in conference_heard.values():
        assert g711.tone_level(samples, 1000) > 4000
