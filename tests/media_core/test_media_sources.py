"""Synthetic sources: 20 ms audio, video at a bitrate in packets under 1200 bytes, the marker."""

from __future__ import annotations

import secrets

import pytest

from media_core.rtp import RtpPacket
from media_core.sources import (
    AUDIO_LEVEL_EXTENSION_ID,
    MARKER,
    MAX_VIDEO_PACKET,
    AudioSource,
    VideoSource,
    contains_marker,
    payload_identity,
)
from media_core.srtp import Direction, KeyMaterial, SrtpProfile, SrtpSession


def test_audio_frames_are_20ms_of_pcmu_with_the_marker() -> None:
    source = AudioSource(ssrc=77, first_sequence=65535, first_timestamp=1000)
    frames = [source.next_frame() for _ in range(3)]
    packets = [f[0] for f in frames]
    assert all(len(f) == 1 for f in frames)
    assert [p.sequence_number for p in packets] == [65535, 0, 1]
    assert [p.timestamp for p in packets] == [1000, 1160, 1320]
    assert all(len(p.payload) == 160 and p.payload.startswith(MARKER) for p in packets)
    assert [payload_identity(p.payload) for p in packets] == [(77, 0, 0), (77, 1, 0), (77, 2, 0)]
    assert packets[0].extension is not None
    assert AUDIO_LEVEL_EXTENSION_ID in packets[0].extension.elements()
    assert RtpPacket.parse(packets[1].build()) == packets[1]


@pytest.mark.parametrize(("bitrate", "fps"), [(300_000, 15), (2_500_000, 30)])
def test_video_frames_carry_the_bitrate_in_small_packets(bitrate: int, fps: int) -> None:
    source = VideoSource(ssrc=5, bitrate_bps=bitrate, fps=fps)
    session = SrtpSession(
        KeyMaterial.generate(SrtpProfile.AES_CM_128_HMAC_SHA1_80, secrets.token_bytes),
        Direction.OUTBOUND,
    )
    total = 0
    for _ in range(fps):  # one second
        frame = source.next_frame()
        assert len({p.timestamp for p in frame}) == 1
        assert [p.marker for p in frame] == [False] * (len(frame) - 1) + [True]
        for packet in frame:
            data = packet.build()
            assert len(data) <= MAX_VIDEO_PACKET and contains_marker(data)
            session.protect(data)  # fits libsrtp's buffer
            total += len(packet.payload)
    assert total == (bitrate // 8 // fps) * fps
    seqs = [p.sequence_number for _ in range(2) for p in source.next_frame()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_video_source_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        VideoSource(ssrc=1, bitrate_bps=0)
    with pytest.raises(ValueError):
        VideoSource(ssrc=1, bitrate_bps=1000, max_packet=2000)


def test_protected_payload_hides_the_marker() -> None:
    packet = AudioSource(ssrc=1).next_frame()[0].build()
    keys = KeyMaterial.generate(SrtpProfile.AEAD_AES_128_GCM, secrets.token_bytes)
    assert contains_marker(packet)
    assert not contains_marker(SrtpSession(keys, Direction.OUTBOUND).protect(packet))
