"""The sans-IO relay core: forwarding, address learning, every drop kind, removal and re-keying."""

from __future__ import annotations

import secrets
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_core.relay_core import (
    MAX_DATAGRAM,
    ParticipantKeys,
    RelayCore,
    RelayError,
    RelayErrorKind,
    Send,
    looks_plain,
)
from media_core.rtcp import ReceiverReport, ReportBlock, SenderReport
from media_core.rtp import HeaderExtension, RtpPacket
from media_core.sources import AudioSource, VideoSource
from media_core.srtp import Direction, KeyMaterial, SrtpError, SrtpProfile, SrtpSession

CM = SrtpProfile.AES_CM_128_HMAC_SHA1_80
GCM = SrtpProfile.AEAD_AES_128_GCM
_ports = count(20000)


def new_keys(profile: SrtpProfile = CM) -> ParticipantKeys:
    return ParticipantKeys(
        KeyMaterial.generate(profile, secrets.token_bytes),
        KeyMaterial.generate(profile, secrets.token_bytes),
    )


class Peer:
    """A participant's side: protects with its send key, unprotects with its receive key."""

    def __init__(self, core: RelayCore, name: str, conference: str, profile: SrtpProfile = CM):
        self.core, self.name = core, name
        self.keys = new_keys(profile)
        self.address = ("127.0.0.1", next(_ports))
        self.out = SrtpSession(self.keys.send, Direction.OUTBOUND)
        self.inbound = SrtpSession(self.keys.receive, Direction.INBOUND)
        self.source = AudioSource(ssrc=secrets.randbits(32))
        core.add_participant(name, conference, self.keys)

    def frame(self) -> bytes:
        return self.source.next_frame()[0].build()

    def send(self, plain: bytes | None = None) -> tuple[bytes, list[Send]]:
        plain = plain if plain is not None else self.frame()
        return plain, self.core.datagram_received(self.address, self.out.protect(plain))

    def open(self, sends: list[Send]) -> list[bytes]:
        return [self.inbound.unprotect(s.data) for s in sends if s.address == self.address]


@pytest.fixture
def core() -> RelayCore:
    return RelayCore()


def call(core: RelayCore, n: int, conference: str = "c1") -> list[Peer]:
    peers = [Peer(core, f"p{i}", conference) for i in range(n)]
    for peer in peers:  # everyone speaks once so the relay learns every address
        peer.send()
    return peers


def test_packet_reaches_every_other_participant_byte_exact(core: RelayCore) -> None:
    a, b, c = call(core, 3)
    plain = RtpPacket(
        96, 500, 9000, 1234, b"media", extension=HeaderExtension.one_byte({2: b"xy"})
    ).build()
    _, sends = a.send(plain)
    assert sorted(s.address for s in sends) == sorted([b.address, c.address])
    assert b.open(sends) == [plain] and c.open(sends) == [plain]
    assert core.counters.accepted == 4 and core.counters.forwarded == 0 + 1 + 2 + 2


def test_only_learned_addresses_get_media_and_conferences_stay_apart(core: RelayCore) -> None:
    a = Peer(core, "a", "c1")
    b = Peer(core, "b", "c1")
    other = Peer(core, "x", "c2")
    other.send()
    _, sends = a.send()
    assert sends == []  # b has not sent yet: the relay does not know where b is
    b.send()
    _, sends = a.send()
    assert [s.address for s in sends] == [b.address]
    assert core.participant("a").address == a.address


def test_participant_moving_to_a_new_address_is_relearned_by_authentication(
    core: RelayCore,
) -> None:
    a, b = call(core, 2)
    a.address = ("127.0.0.1", next(_ports))
    _, sends = a.send()
    assert [s.address for s in sends] == [b.address]
    assert core.participant("p0").address == a.address
    _, sends = b.send()
    assert [s.address for s in sends] == [a.address]


def test_gcm_and_cm_participants_share_a_conference(core: RelayCore) -> None:
    a = Peer(core, "a", "c", CM)
    b = Peer(core, "b", "c", GCM)
    b.send()
    plain, sends = a.send()
    assert b.open(sends) == [plain]
    assert len(sends[0].data) == len(plain) + GCM.tag_length


def test_rtcp_reports_are_forwarded_re_protected(core: RelayCore) -> None:
    a, b = call(core, 2)
    sr = SenderReport(a.source.ssrc, 1 << 40, 160, 1, 160, (ReportBlock(5, 0, 0, 1, 0),)).build()
    sends = core.datagram_received(a.address, a.out.protect_rtcp(sr))
    assert [b.inbound.unprotect_rtcp(s.data) for s in sends] == [sr]
    assert core.counters.rtcp_accepted == 1


def _counter(core: RelayCore, name: str) -> int:
    return core.counters.as_dict()[name]


def test_each_bad_packet_kind_is_dropped_and_counted(core: RelayCore) -> None:
    a, _b = call(core, 2)
    good_plain = a.frame()
    good = a.out.protect(good_plain)
    forged = bytearray(a.out.protect(a.frame()))
    forged[-1] ^= 0xFF
    stranger = SrtpSession(new_keys().send, Direction.OUTBOUND).protect(a.frame())
    bad_rtcp = SrtpSession(a.keys.send, Direction.OUTBOUND).protect_rtcp(
        bytes.fromhex("81c9000700000001")  # an RR whose length overruns the packet
    )
    cases = [
        (a.address, good[:8], "dropped_truncated"),
        (a.address, good[:12] + b"\x00" * 5, "dropped_truncated"),
        (a.address, bytes([0x40]) + good[1:], "dropped_bad_version"),
        (a.address, bytes(forged), "dropped_bad_tag"),
        (a.address, b"\x80" + b"\x00" * (MAX_DATAGRAM + 10), "dropped_oversized"),
        (a.address, a.frame() + b"\x00" * 10, "dropped_plain_rtp"),
        (("127.0.0.1", 9), stranger, "dropped_unknown_source"),
        (a.address, bad_rtcp, "dropped_malformed"),
    ]
    for address, data, counter in cases:
        before = _counter(core, counter)
        assert core.datagram_received(address, data) == [], counter
        assert _counter(core, counter) == before + 1, counter
    assert core.datagram_received(a.address, good) != []
    assert core.datagram_received(a.address, good) == []  # the same packet again
    assert _counter(core, "dropped_replay") == 1
    # a replay from another address is a replay too, and does not move the participant
    assert core.datagram_received(("127.0.0.1", 7), good) == []
    assert _counter(core, "dropped_replay") == 2
    assert core.participant("p0").address == a.address
    assert core.counters.dropped == len(cases) + 2


def test_plain_rtp_from_an_unknown_address_is_counted_as_plain(core: RelayCore) -> None:
    call(core, 2)
    core.datagram_received(("127.0.0.1", 5), AudioSource(ssrc=3).next_frame()[0].build())
    assert core.counters.dropped_plain_rtp == 1


def test_plainness_heuristic_tells_media_from_ciphertext() -> None:
    plain = VideoSource(ssrc=1, bitrate_bps=1_000_000).next_frame()[0].build()
    keys = KeyMaterial.generate(CM, secrets.token_bytes)
    assert looks_plain(plain[12:])
    assert not looks_plain(SrtpSession(keys, Direction.OUTBOUND).protect(plain)[12:])
    assert not looks_plain(b"\x00" * 20)  # too short to judge


def test_removed_participant_gets_nothing_and_its_packets_are_unknown(core: RelayCore) -> None:
    a, b, c = call(core, 3)
    core.remove_participant("p2")
    _plain, sends = a.send()
    assert [s.address for s in sends] == [b.address]
    old_receive = SrtpSession(c.keys.receive, Direction.INBOUND)
    for send in sends:
        with pytest.raises(SrtpError):
            old_receive.unprotect(send.data)
    _, sends = c.send()
    assert sends == [] and core.counters.dropped_unknown_source == 1
    with pytest.raises(RelayError) as caught:
        core.remove_participant("p2")
    assert caught.value.kind is RelayErrorKind.UNKNOWN_PARTICIPANT


def test_rekey_switches_over_on_the_first_packet_under_the_new_key(core: RelayCore) -> None:
    a, b = call(core, 2)
    old_keys, old_b_receive = b.keys, b.inbound
    new = new_keys()
    core.rekey_participant("p1", new)
    assert core.participant("p1").rekey_pending
    plain, sends = a.send()
    assert b.open(sends) == [plain]  # still the old keys until b uses the new ones
    b.keys, b.out = new, SrtpSession(new.send, Direction.OUTBOUND)
    b.inbound = SrtpSession(new.receive, Direction.INBOUND)
    _, sends = b.send()
    assert len(sends) == 1 and not core.participant("p1").rekey_pending
    plain, sends = a.send()
    assert b.open(sends) == [plain]
    with pytest.raises(SrtpError):
        old_b_receive.unprotect(sends[0].data)
    # the old send key no longer opens anything at the relay
    stale = SrtpSession(old_keys.send, Direction.OUTBOUND).protect(b.frame())
    assert core.datagram_received(b.address, stale) == []
    assert core.counters.dropped_bad_tag == 1


def test_rekey_switches_over_on_a_first_rtcp_report_under_the_new_key(core: RelayCore) -> None:
    """A member that only sends RTCP (the region's recorder) switches over too, although its fresh
    session numbers SRTCP from the start again, which the current session reads as a replay."""
    a, b = call(core, 2)
    rr = ReceiverReport(b.source.ssrc).build()
    for _ in range(3):  # SRTCP indices 0..2 under the current keys
        core.datagram_received(b.address, b.out.protect_rtcp(rr))
    new = new_keys()
    core.rekey_participant("p1", new)
    b.out, b.inbound = (
        SrtpSession(new.send, Direction.OUTBOUND),
        SrtpSession(new.receive, Direction.INBOUND),
    )
    sends = core.datagram_received(b.address, b.out.protect_rtcp(rr))
    assert len(sends) == 1 and not core.participant("p1").rekey_pending
    plain, sends = a.send()
    assert b.open(sends) == [plain]
    # a replay under the current keys is still a replay, not a switch
    replayed = SrtpSession(new.send, Direction.OUTBOUND).protect_rtcp(rr)
    assert core.datagram_received(b.address, replayed) == []
    assert core.counters.dropped_replay == 1


def test_duplicate_and_unknown_participants_are_refused(core: RelayCore) -> None:
    Peer(core, "a", "c1")
    with pytest.raises(RelayError) as caught:
        core.add_participant("a", "c1", new_keys())
    assert caught.value.kind is RelayErrorKind.DUPLICATE_PARTICIPANT
    with pytest.raises(RelayError):
        core.rekey_participant("nobody", new_keys())
    with pytest.raises(RelayError):
        core.conference_members("nowhere")
    assert core.conference_members("c1") == ["a"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1600), st.integers(0, 3))
def test_no_datagram_crashes_the_core(data: bytes, who: int) -> None:
    core = RelayCore()
    peers = call(core, 3)
    address = peers[who].address if who < 3 else ("127.0.0.1", 1)
    before = core.counters.received
    assert core.datagram_received(address, data) == []
    assert core.counters.received == before + 1 and core.counters.dropped >= 1
