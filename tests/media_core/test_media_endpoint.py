"""The participant's media endpoint against the sans-IO relay core: grants, re-keys, moves."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from media_core.endpoint import GrantError, MediaEndpoint, MediaGrant
from media_core.quality import CallQuality
from media_core.relay_core import ParticipantKeys, RelayCore
from media_core.sources import AudioSource
from media_core.srtp import KeyMaterial, SrtpProfile

CM = SrtpProfile.AES_CM_128_HMAC_SHA1_80
RELAY_A = ("127.0.0.1", 50000)
RELAY_B = ("127.0.0.1", 50002)


def keys() -> ParticipantKeys:
    return ParticipantKeys(
        KeyMaterial.generate(CM, secrets.token_bytes), KeyMaterial.generate(CM, secrets.token_bytes)
    )


def grant_message(
    pid: str, k: ParticipantKeys, relay: tuple[str, int], **extra: Any
) -> dict[str, Any]:
    return {
        "type": "media.keys",
        "participant_id": pid,
        "conference_id": "c",
        "profile": CM.value,
        "send_key": k.send.encode(),
        "receive_key": k.receive.encode(),
        "media": {"host": relay[0], "port": relay[1]},
        "relay": "relay-a" if relay == RELAY_A else "relay-b",
        **extra,
    }


class Party:
    """An endpoint, its address, its audio source, and the relay core it talks to."""

    def __init__(self, core: RelayCore, pid: str, port: int) -> None:
        self.core, self.pid, self.address = core, pid, ("127.0.0.1", port)
        self.endpoint = MediaEndpoint(jitter_delay=0.04)
        self.source = AudioSource(ssrc=port)
        self.keys = keys()
        core.add_participant(pid, "c", self.keys)
        self.endpoint.handle_message(grant_message(pid, self.keys, RELAY_A))

    def send(self, now: float, relay: tuple[str, int] = RELAY_A) -> list[tuple[Any, bytes]]:
        out = self.endpoint.protect(self.source.next_frame()[0].build())
        assert out is not None and out.address == relay
        return [(s.address, s.data) for s in self.core.datagram_received(self.address, out.data)]


def deliver(
    sends: list[tuple[Any, bytes]], parties: list[Party], now: float, relay: Any = RELAY_A
) -> int:
    opened = 0
    for address, data in sends:
        for p in parties:
            if p.address == address and p.endpoint.datagram_received(relay, data, now):
                opened += 1
    return opened


def test_grant_parsing_refuses_what_is_not_a_grant() -> None:
    good = grant_message("p", keys(), RELAY_A)
    assert MediaGrant.from_message(good).relay == RELAY_A
    for broken in (
        {k: v for k, v in good.items() if k != "send_key"},
        good | {"receive_key": "AAAA"},
        good | {"profile": "NULL"},
        good | {"media": {"host": "127.0.0.1", "port": 0}},
        good | {"media": "udp://x"},
    ):
        with pytest.raises(GrantError):
            MediaGrant.from_message(broken)
    assert MediaEndpoint().handle_message({"type": "roster"}) is False


def test_nothing_goes_out_or_comes_in_without_keys() -> None:
    endpoint = MediaEndpoint()
    assert endpoint.protect(AudioSource(ssrc=1).next_frame()[0].build()) is None
    assert endpoint.datagram_received(RELAY_A, b"\x80" * 40, 0.0) is None
    assert endpoint.counters.dropped_no_keys == 1 and endpoint.counters.sent == 0


def test_media_flows_through_the_relay_core_and_strangers_are_dropped() -> None:
    core = RelayCore()
    a, b = Party(core, "a", 40000), Party(core, "b", 40002)
    deliver(b.send(0.0), [a], 0.0)  # the relay learns b's address
    for i in range(20):
        assert deliver(a.send(i * 0.02), [b], i * 0.02) == 1
    assert b.endpoint.statistics[a.source.ssrc].received == 20
    played = b.endpoint.playout(1.0)
    assert [item.packet.ssrc for _, item in played] == [a.source.ssrc] * 20
    assert b.endpoint.quality(a.source.ssrc).loss == 0.0
    out = a.endpoint.protect(a.source.next_frame()[0].build())
    assert out is not None
    forged = bytearray(core.datagram_received(a.address, out.data)[0].data)
    assert b.endpoint.datagram_received(("127.0.0.1", 9), bytes(forged), 2.0) is None
    forged[-1] ^= 1
    assert b.endpoint.datagram_received(RELAY_A, bytes(forged), 2.0) is None
    counters = b.endpoint.counters
    assert counters.dropped_not_from_relay == 1 and counters.dropped_bad_tag == 1


def test_lost_packets_show_in_the_quality_figures() -> None:
    core = RelayCore()
    a, b = Party(core, "a", 40000), Party(core, "b", 40002)
    deliver(b.send(0.0), [a], 0.0)
    for i in range(40):
        sends = a.send(i * 0.02)
        if i % 4 != 3:  # every fourth packet is lost on the way
            deliver(sends, [b], i * 0.02)
    quality = b.endpoint.quality(a.source.ssrc)
    assert quality.loss == pytest.approx(9 / 39, abs=0.01)
    lossless = CallQuality.from_figures(0.0, quality.jitter_ms, None, jitter_buffer_ms=40)
    assert quality.mos < lossless.mos - 1


def test_a_staged_rekey_keeps_the_old_receive_key_until_the_relay_switches() -> None:
    core = RelayCore()
    a, b = Party(core, "a", 40000), Party(core, "b", 40002)
    deliver(b.send(0.0), [a], 0.0)
    fresh = keys()
    core.rekey_participant("b", fresh)
    b.endpoint.handle_message(grant_message("b", fresh, RELAY_A, rekey=True))
    assert b.endpoint.rekey_pending
    assert deliver(a.send(0.1), [b], 0.1) == 1  # still under b's old receive key
    deliver(b.send(0.12), [a], 0.12)  # b's first packet under its new send key switches the relay
    assert deliver(a.send(0.14), [b], 0.14) == 1
    assert not b.endpoint.rekey_pending and b.endpoint.counters.rekeys == 1


def test_a_move_replaces_every_session_and_drops_the_old_relay() -> None:
    old, new = RelayCore(), RelayCore()
    a, b = Party(old, "a", 40000), Party(old, "b", 40002)
    deliver(b.send(0.0), [a], 0.0)
    late = a.send(0.02)  # still on its way from the old relay when the move comes
    for party in (a, b):
        party.keys = keys()
        new.add_participant(party.pid, "c", party.keys)
        party.core = new
        party.endpoint.handle_message(
            grant_message(party.pid, party.keys, RELAY_B) | {"type": "media.move"}
        )
    assert deliver(late, [b], 0.03) == 0
    assert b.endpoint.counters.dropped_not_from_relay == 1 and b.endpoint.counters.moves == 1
    deliver(b.send(0.04, RELAY_B), [a], 0.04, RELAY_B)
    assert deliver(a.send(0.06, RELAY_B), [b], 0.06, RELAY_B) == 1
