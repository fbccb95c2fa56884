"""The recorder against a relay core on a real UDP socket: it joins with keys of its own, hears
both talkers through the relay, follows a re-key, and writes PCM that holds both tones."""

from __future__ import annotations

import asyncio
import secrets
from array import array
from typing import Any

from media_core import g711
from media_core.endpoint import MediaEndpoint, MediaGrant
from media_core.relay_core import ParticipantKeys, RelayCore
from media_core.sources import AudioSource
from media_core.srtp import KeyMaterial, SrtpProfile
from services.meeting.media.recorder import Recorders, recorder_participant
from services.meeting.relay.control import RelayState
from services.meeting.relay.server import RelayProtocol

PROFILE = SrtpProfile.AES_CM_128_HMAC_SHA1_80


def keys() -> ParticipantKeys:
    return ParticipantKeys(
        KeyMaterial.generate(PROFILE, secrets.token_bytes),
        KeyMaterial.generate(PROFILE, secrets.token_bytes),
    )


class Hook:
    """A media-key hook around an in-process relay core, as the region's pool is around relays."""

    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.issued: list[str] = []
        self.withdrawn: list[tuple[str, bool]] = []

    def grant(self, pid: str, cid: str, got: ParticipantKeys) -> dict[str, Any]:
        return {
            "participant_id": pid,
            "conference_id": cid,
            "profile": PROFILE.value,
            "send_key": got.send.encode(),
            "receive_key": got.receive.encode(),
            "media": {"host": self.state.media_host, "port": self.state.media_port},
        }

    async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any] | None:
        got = keys()
        self.state.core.add_participant(participant_id, conference_id, got)
        self.issued.append(participant_id)
        return self.grant(participant_id, conference_id, got)

    async def withdraw(self, conference_id: str, participant_id: str, rekey: bool = True) -> None:
        self.state.core.remove_participant(participant_id)
        self.withdrawn.append((participant_id, rekey))


class Talker(asyncio.DatagramProtocol):
    def __init__(self, grant: dict[str, Any]) -> None:
        self.endpoint = MediaEndpoint(jitter_delay=None)
        self.endpoint.apply(MediaGrant.from_message(grant))
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send(self, rtp: bytes) -> None:
        out = self.endpoint.protect(rtp)
        assert out is not None
        self.transport.sendto(out.data, out.address)


async def talk(talkers: list[tuple[Talker, AudioSource]], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for frame in range(1, round(seconds / 0.02) + 1):
        for talker, source in talkers:
            for packet in source.next_frame():
                talker.send(packet.build())
        await asyncio.sleep(max(0.0, start + frame * 0.02 - loop.time()))  # paced, no drift


async def call() -> tuple[bytes, Hook, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    state = RelayState(RelayCore(), "relay-t", "sa", "127.0.0.1", 0, "token")
    relay_transport, _ = await loop.create_datagram_endpoint(
        lambda: RelayProtocol(state), local_addr=("127.0.0.1", 0)
    )
    state.media_port = relay_transport.get_extra_info("sockname")[1]
    hook = Hook(state)
    written: list[bytes] = []

    async def write(recording_id: str, pcm: bytes) -> None:
        assert recording_id == "r1"
        written.append(pcm)

    talkers = []
    for name, hz in (("p-ann", 440), ("p-ben", 660)):
        talker = Talker(await hook.issue("sa-c1", name))
        await loop.create_datagram_endpoint(lambda t=talker: t, local_addr=("127.0.0.1", 0))
        talkers.append((talker, AudioSource(ssrc=hash(name) & 0xFFFF, tone_hz=hz)))

    recorders = Recorders(hook, write)
    recorder = await recorders.start("r1", "sa-c1")
    assert recorder is not None and recorder.participant_id == "rec-r1"
    await talk(talkers, 1.0)
    # a re-key of the whole conference: the recorder gets its new keys as a participant would
    for talker, _ in talkers:
        fresh = keys()
        pid = talker.endpoint.grant.participant_id  # type: ignore[union-attr]
        state.core.rekey_participant(pid, fresh)
        talker.endpoint.handle_message(
            {"type": "media.keys", "rekey": True, **hook.grant(pid, "sa-c1", fresh)}
        )
    fresh = keys()
    state.core.rekey_participant("rec-r1", fresh)
    assert recorders.deliver(
        "rec-r1", {"type": "media.keys", "rekey": True, **hook.grant("rec-r1", "sa-c1", fresh)}
    )
    assert not recorders.deliver("p-ann", {"type": "media.keys"})
    await talk(talkers, 1.0)
    await asyncio.sleep(0.1)
    # the relay switched the recorder over: it sent under its new key, and opens what comes now
    switched = not state.core.participant("rec-r1").rekey_pending
    await recorders.stop("r1")
    relay_transport.close()
    assert recorder.mixdown is not None
    return b"".join(written), hook, {**recorder.mixdown.counters.as_dict(), "switched": switched}


def test_the_recorder_hears_both_talkers_through_the_relay_and_follows_a_rekey() -> None:
    pcm, hook, counters = asyncio.run(call())
    samples = list(array("h", pcm))
    assert 1.8 * 8000 < len(samples) < 2.6 * 8000
    first, second = samples[: len(samples) // 2], samples[len(samples) // 2 :]
    for half in (first, second):  # before and after the re-key
        assert g711.tone_level(half, 440) > 2000, counters
        assert g711.tone_level(half, 660) > 2000, counters
        assert g711.tone_level(half, 1000) < 300
    assert recorder_participant("r1") in hook.issued
    assert hook.withdrawn == [("rec-r1", False)]  # its keys given back, nobody re-keyed for it
    assert counters["late"] == 0 and counters["ignored_payload"] == 0
    assert counters["switched"]


def test_without_relay_keys_there_is_no_recorder() -> None:
    class NoKeys:
        async def issue(self, conference_id: str, participant_id: str) -> None:
            return None

        async def withdraw(
            self, conference_id: str, participant_id: str, rekey: bool = True
        ) -> None:
            raise AssertionError("nothing to withdraw")

    async def go() -> object:
        async def write(recording_id: str, pcm: bytes) -> None:
            raise AssertionError("nothing to write")

        recorders = Recorders(NoKeys(), write)
        started = await recorders.start("r2", "sa-c2")
        await recorders.stop("r2")
        return started

    assert asyncio.run(go()) is None


def test_a_recorder_that_cannot_start_leaves_the_call_unrecorded() -> None:
    class Broken:
        async def issue(self, conference_id: str, participant_id: str) -> dict[str, Any]:
            return {"profile": "nonsense"}  # not a grant

        async def withdraw(
            self, conference_id: str, participant_id: str, rekey: bool = True
        ) -> None:
            self.withdrawn = participant_id

    async def go() -> tuple[object, str]:
        async def write(recording_id: str, pcm: bytes) -> None:
            raise AssertionError("nothing to write")

        hook = Broken()
        recorders = Recorders(hook, write)
        started = await recorders.start("r3", "sa-c3")
        return started, hook.withdrawn

    assert asyncio.run(go()) == (None, "rec-r3")  # the keys it was given are handed back
