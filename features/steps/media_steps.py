"""Steps of features/media.feature: MT-03, MT-06, MT-08, MT-12 against the live meeting stack.

The stack is the harness's `meeting_stack`, shared with the meeting features; its region sa has
two relays and a PSTN gateway. Each scenario runs its participants (`MediaCall`: WSS signaling plus
SRTP over UDP) on an event loop in a background thread, so media keeps flowing between steps as it
would in a real call. Captures, gaps and counters are written to the scenario's evidence folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when
from scapy.layers.inet import TCP, UDP

from media_core import g711
from media_core.rtp import RtpPacket
from media_core.sources import MARKER, AudioSource, VideoSource
from media_core.srtp import Direction, KeyMaterial, SrtpError, SrtpSession
from protocol.meeting_client import MeetingApi
from protocol.signaling import MessageType as T
from protocol.stack import Stack
from roomtrust.comply.capture import WireCapture, can_capture
from roomtrust.comply.checks import media as checks
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import evidence
from roomtrust.harness.call import MediaCall
from roomtrust.harness.plugin import MEDIA_REGION
from services.common.tls import client_context
from services.meeting.pstn.client import PstnTrunk
from services.meeting.relay.client import read_counters
from services.meeting.relay.files import running_relays

FIXTURES = (evidence,)
STEP_TIMEOUT = 60.0
VIDEO_SSRC = 0x2100

SYN, SYN_ACK = 0x02, 0x12  # TCP flags: a connection attempt has SYN and not ACK


def names(text: str) -> list[str]:
    found = [part.strip() for part in text.split(",") if part.strip()]
    assert found, f"no names in {text!r}"
    return found


class Scene:
    """One scenario's participants, on an event loop running in a background thread."""

    def __init__(self, home: Path, region: str, url: str, ca_file: Path) -> None:
        self.home, self.region, self.url, self.ca_file = home, region, url, ca_file
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.admin: MeetingApi | None = None
        self.apis: dict[str, MeetingApi] = {}
        self.calls: dict[str, MediaCall] = {}
        self.conference_id = ""
        self.capture: WireCapture | None = None
        self.facts: dict[str, Any] = {}

    def run(self, coro: Any, timeout: float = STEP_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def now(self) -> float:
        return self.loop.time()

    def relays(self) -> dict[str, dict[str, Any]]:
        return {str(r["name"]): r for r in running_relays(self.home, self.region)}

    def close(self) -> None:
        async def shut() -> None:
            for call in self.calls.values():
                await call.close()
                with contextlib.suppress(Exception):
                    await call.signal.__aexit__()

        with contextlib.suppress(Exception):
            self.run(shut(), timeout=30)
        if self.capture is not None:
            self.capture.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        if self.admin is not None:
            self.admin.close()


@pytest.fixture
def scene(meeting_stack: Stack) -> Iterator[Scene]:
    region = MEDIA_REGION
    endpoint = meeting_stack.endpoint("meeting", region)
    made = Scene(meeting_stack.home, region, endpoint.url, endpoint.ca_file)
    yield made
    made.close()


def clear_bytes(packets: list[Any]) -> list[bytes]:
    """Every UDP payload and every TCP stream (segments in sequence order) of a capture, read
    once, so many secrets can be looked for without re-reading the capture for each."""
    found: list[bytes] = []
    streams: dict[tuple[int, int], dict[int, bytes]] = {}
    for pkt in packets:
        if UDP in pkt:
            found.append(bytes(pkt[UDP].payload))
        elif TCP in pkt:
            data = bytes(pkt[TCP].payload)
            if data:
                flow = streams.setdefault((int(pkt[TCP].sport), int(pkt[TCP].dport)), {})
                flow.setdefault(int(pkt[TCP].seq), data)
    found += [b"".join(d for _, d in sorted(s.items())) for s in streams.values()]
    return found


def healthy_relays(scene: Scene) -> list[str]:
    healthy = []
    for name, ready in scene.relays().items():
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.Client(verify=client_context(ready["ca_file"]), timeout=2) as client,
        ):
            if client.get(f"{ready['control_url']}/v1/health").status_code == 200:
                healthy.append(name)
    return healthy


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


# -- the stack, the people, the call ---------------------------------------------------------


@given(parsers.parse('the media region "{region}" is running with two relays and a PSTN gateway'))
def media_region_running(scene: Scene, region: str) -> None:
    assert scene.region == region
    assert wait_until(lambda: len(healthy_relays(scene)) >= 2, 60), "fewer than two relays"
    assert (scene.home / "meeting" / region / "pstn" / "ready.json").exists(), "no PSTN gateway"


@given(parsers.parse('an enterprise in the media region with the users "{people}"'))
def enterprise(scene: Scene, people: str) -> None:
    scene.admin = MeetingApi(scene.url, scene.ca_file)
    scene.admin.register_enterprise()
    for person in names(people):
        scene.apis[person] = scene.admin.member(person)


def join_with_media(scene: Scene, owner: str, people: str, pin: str | None = None) -> None:
    options = {"password": pin} if pin else {}
    scene.conference_id = scene.apis[owner].create_conference("Media", **options)["conference_id"]

    async def join() -> None:
        for person in names(people):
            signal_ = scene.apis[person].signaling()
            await signal_.__aenter__()
            call = await MediaCall(signal_).open()
            scene.calls[person] = call
            await call.join(scene.conference_id, pin)
            await call.keys()

    scene.run(join())


@given(parsers.parse('"{owner}" owns a conference that "{people}" join with media'))
def conference_with_media(scene: Scene, owner: str, people: str) -> None:
    join_with_media(scene, owner, people)


@given(
    parsers.parse(
        '"{owner}" owns a conference with the PIN "{pin}" that "{people}" join with media'
    )
)
def conference_with_pin(scene: Scene, owner: str, pin: str, people: str) -> None:
    join_with_media(scene, owner, people, pin)


def start_talking(scene: Scene, tones: dict[str, float] | None = None) -> None:
    async def talk() -> None:
        for index, (person, call) in enumerate(scene.calls.items()):
            hz = (tones or {}).get(person)
            call.start_audio(AudioSource(ssrc=0x1000 + index, tone_hz=hz))

    scene.run(talk())


def sleep(scene: Scene, seconds: float) -> None:
    scene.run(asyncio.sleep(seconds))


@given("everyone keeps talking")
def keep_talking(scene: Scene) -> None:
    start_talking(scene)
    sleep(scene, 0.6)


@given("a loopback capture of the media region's signaling and relays is running")
def start_capture(scene: Scene) -> None:
    if not can_capture():
        pytest.skip("capturing on lo needs CAP_NET_RAW (run as root)")
    relays = scene.relays().values()
    ports = {int(scene.url.rsplit(":", 1)[1])}
    ports |= {int(r["media_port"]) for r in relays} | {int(r["port"]) for r in relays}
    scene.capture = WireCapture(ports=ports).start()


# -- MT-06, MT-12: the four-party capture -----------------------------------------------------


@when("everyone talks for 1 second and sends a video frame")
def talk_captured(scene: Scene) -> None:
    async def talk() -> None:
        sources = [AudioSource(ssrc=0x2000 + i) for i in range(len(scene.calls))]
        for call, source in zip(scene.calls.values(), sources, strict=True):
            call.send_rtp(source.next_frame()[0].build())  # the relay learns every address
        await asyncio.sleep(0.2)
        for index, (call, source) in enumerate(zip(scene.calls.values(), sources, strict=True)):
            call.start_audio(source, frames=50)
            for packet in VideoSource(ssrc=VIDEO_SSRC + index, bitrate_bps=600_000).next_frame():
                call.send_rtp(packet.build())
        await asyncio.sleep(1.5)

    scene.run(talk())
    scene.facts["grants"] = {p: c.endpoint.grant for p, c in scene.calls.items()}
    assert scene.capture is not None
    scene.capture.stop()


@then("everyone hears and sees everyone else")
def hears_everyone(scene: Scene, evidence: Evidence) -> None:
    heard: dict[str, dict[str, dict[str, int]]] = {}
    for person, call in scene.calls.items():
        heard[person] = {}
        for other_index, (other, sender) in enumerate(scene.calls.items()):
            if other == person or sender.source is None:
                continue
            audio = call.from_source(sender.source.ssrc)
            video = call.from_source(VIDEO_SSRC + other_index)
            unmarked = [a for a in audio + video if MARKER not in a.packet.payload]
            heard[person][other] = {
                "audio": len(audio),
                "video": len(video),
                "unmarked": len(unmarked),
            }
    evidence.write_json("frames-heard.json", heard)
    checks.everyone_heard_everyone(heard, audio_frames=50, video_packets=3)


@then("the capture shows no media payload and no key material in the clear")
def nothing_in_clear(scene: Scene, evidence: Evidence) -> None:
    capture = scene.capture
    assert capture is not None
    evidence.write_json("wire-summary.json", capture.summary(MARKER))
    signaling_port = int(scene.url.rsplit(":", 1)[1])
    tls = [
        p for p in capture.packets if TCP in p and signaling_port in (p[TCP].sport, p[TCP].dport)
    ]
    clear = clear_bytes(capture.packets)
    keys_found = []
    for person, grant in scene.facts["grants"].items():
        for direction, key in (("send", grant.send), ("receive", grant.receive)):
            forms = (key.key_and_salt, key.master_key, key.encode().encode())
            for form in (*forms, base64.b64encode(key.master_key)[:16]):
                if any(form in blob for blob in clear):
                    keys_found.append(f"{person}'s {direction} key")
    checks.nothing_in_clear(
        packets=len(capture.packets),
        marker_hits=len(capture.marker_hits(MARKER)),
        signaling_bytes=sum(len(bytes(p[TCP].payload)) for p in tls),
        # SRTP leaves the RTP header, with the SSRC, readable: the search must find it
        header_found=any((0x2000).to_bytes(4, "big") in blob for blob in clear),
        keys_found=keys_found,
    )


def media_packets(scene: Scene) -> list[Any]:
    assert scene.capture is not None
    ports = {call.port for call in scene.calls.values()}
    return [
        p
        for p in scene.capture.packets
        if UDP in p and (p[UDP].sport in ports or p[UDP].dport in ports)
    ]


@then("every captured media packet carries a tag that authenticates under its participant's keys")
def every_packet_authenticated(scene: Scene, evidence: Evidence) -> None:
    by_port = {call.port: person for person, call in scene.calls.items()}
    grants = scene.facts["grants"]
    checkers: dict[tuple[str, str], SrtpSession] = {}
    tags: list[dict[str, Any]] = []
    for pkt in media_packets(scene):
        outbound = pkt[UDP].sport in by_port
        person = by_port[pkt[UDP].sport if outbound else pkt[UDP].dport]
        key = grants[person].send if outbound else grants[person].receive
        flow = (person, "out" if outbound else "in")
        checker = checkers.setdefault(flow, SrtpSession(key, Direction.INBOUND))
        datagram = bytes(pkt[UDP].payload)
        try:
            tag: int | None = len(datagram) - len(checker.unprotect(datagram))
        except SrtpError:
            tag = None
        tags.append(
            {
                "flow": " ".join(flow),
                "authenticated": tag is not None,
                "tag_length": tag,
                "expected": key.profile.tag_length,
            }
        )
    evidence.write_json(
        "authenticated.json",
        {"media_packets": len(tags), "authenticated": sum(t["authenticated"] for t in tags)},
    )
    checks.media_packets_authenticated(tags)


@then("every participant's media flow was opened by the participant, outbound to the relay")
def outbound_only(scene: Scene) -> None:
    assert scene.capture is not None
    by_port = {call.port: person for person, call in scene.calls.items()}
    first: dict[str, str] = {}
    for pkt in media_packets(scene):
        outbound = pkt[UDP].sport in by_port
        person = by_port[pkt[UDP].sport if outbound else pkt[UDP].dport]
        first.setdefault(person, "outbound" if outbound else "inbound")
    # a connection opened to a participant's port: a SYN without ACK. Any other TCP packet to
    # that port number is the answer to some client whose ephemeral TCP port happens to equal
    # the participant's UDP port (the two ranges overlap; a busy stack hits it now and then)
    dialled_in = [
        p
        for p in scene.capture.packets
        if TCP in p and p[TCP].dport in by_port and int(p[TCP].flags) & SYN_ACK == SYN
    ]
    checks.flows_opened_outbound(first, list(scene.calls), len(dialled_in))


# -- MT-06: plain RTP -------------------------------------------------------------------------


def plain_count(scene: Scene) -> int:
    return sum(
        c.get("dropped_plain_rtp", 0) for c in read_counters(scene.home, scene.region).values()
    )


@when(parsers.parse('"{person}" sends {count:d} plain RTP packets to the relay'))
def send_plain(scene: Scene, person: str, count: int) -> None:
    call = scene.calls[person]
    others = [c for p, c in scene.calls.items() if p != person]
    start_talking(scene)
    sleep(scene, 0.4)  # everyone is known to the relay
    scene.facts["plain_before"] = plain_count(scene)
    scene.facts["plain_sent"] = count
    grant = call.endpoint.grant
    assert grant is not None

    async def send() -> None:
        await call.stop_audio()
        for other in others:
            await other.stop_audio()
        await asyncio.sleep(0.2)
        scene.facts["heard_before"] = {p: len(c.arrivals) for p, c in scene.calls.items()}
        source = AudioSource(ssrc=0x3000)
        assert call._transport is not None
        for _ in range(count):
            call._transport.sendto(source.next_frame()[0].build(), grant.relay)
        await asyncio.sleep(0.5)

    scene.run(send())


@then(parsers.parse('"{person}" receives none of them'))
def receives_none(scene: Scene, person: str) -> None:
    call = scene.calls[person]
    checks.plain_rtp_reached_nobody(
        person,
        sent=scene.facts["plain_sent"],
        before=scene.facts["heard_before"][person],
        after=len(call.arrivals),
        plain=len([a for a in call.arrivals if a.packet.ssrc == 0x3000]),
    )


@then(parsers.parse("the relay has counted {count:d} more plain RTP packets"))
def counted_plain(scene: Scene, count: int, evidence: Evidence) -> None:
    expected = scene.facts["plain_before"] + count
    wait_until(lambda: plain_count(scene) >= expected, 5)
    evidence.write_json("relay-counters.json", read_counters(scene.home, scene.region))
    checks.plain_rtp_counted(scene.facts["plain_before"], plain_count(scene), count)


# -- MT-06, MT-09: removal ----------------------------------------------------------------------


@when(parsers.parse('the moderator removes "{person}"'))
def remove(scene: Scene, person: str) -> None:
    owner = next(iter(scene.calls.values()))
    removed = scene.calls[person]
    scene.facts["old_grant"] = removed.endpoint.grant
    scene.facts["removed_wall"] = time.time()

    async def go() -> None:
        await owner.send({"type": T.REMOVE, "target": removed.participant_id})
        for other in scene.calls.values():
            if other is not removed:
                while not (await other.expect(T.MEDIA_KEYS)).get("rekey"):
                    pass
        scene.facts["rekeyed_at"] = scene.now()
        await removed.expect(T.REMOVED)
        await asyncio.sleep(0.8)  # the removed one keeps sending with its old keys
        for call in scene.calls.values():
            await call.stop_audio()

    scene.run(go())
    assert scene.capture is not None
    scene.capture.stop()


@then(parsers.parse('"{first}" and "{second}" get new keys and still hear each other'))
def rekeyed(scene: Scene, first: str, second: str) -> None:
    since = scene.facts["rekeyed_at"]
    listeners = {}
    for listener, talker in ((first, second), (second, first)):
        call, source = scene.calls[listener], scene.calls[talker].source
        assert source is not None
        listeners[listener] = {
            "rekeys": call.endpoint.counters.rekeys,
            "rekey_pending": call.endpoint.rekey_pending,
            "frames_since": len([x for x in call.from_source(source.ssrc) if x.at > since]),
        }
    checks.rekeyed_and_hearing(listeners, min_frames=15)


@then(parsers.parse('"{person}" receives nothing after the removal'))
def receives_nothing(scene: Scene, person: str) -> None:
    arrivals = scene.calls[person].arrivals
    at = scene.facts["rekeyed_at"]
    late = [a for a in arrivals if a.at > at + 0.1]
    checks.nothing_after_removal(
        person, before=len([a for a in arrivals if a.at <= at]), after=len(late)
    )


def opens(key: KeyMaterial, datagram: bytes) -> bool:
    try:
        SrtpSession(key, Direction.INBOUND).unprotect(datagram)
    except SrtpError:
        return False
    return True


@then(parsers.parse('"{person}"\'s old keys open none of the media captured after the removal'))
def old_keys_useless(scene: Scene, person: str, evidence: Evidence) -> None:
    removed = scene.calls[person]
    old = scene.facts["old_grant"]
    at = scene.facts["removed_wall"]
    packets = media_packets(scene)
    before = [p for p in packets if float(p.time) < at and p[UDP].dport == removed.port]
    after = [p for p in packets if float(p.time) > at + 0.05 and p[UDP].sport != removed.port]
    opened_before = [p for p in before if opens(old.receive, bytes(p[UDP].payload))]
    opened = [p for p in after if opens(old.receive, bytes(p[UDP].payload))]
    opened += [p for p in after if opens(old.send, bytes(p[UDP].payload))]
    evidence.write_json("after-removal.json", {"packets": len(after), "opened": len(opened)})
    checks.old_keys_open_nothing(person, len(opened_before), len(after), len(opened))


# -- MT-03: failover ------------------------------------------------------------------------------


@when("the relay carrying the call is killed with SIGKILL")
def kill_relay(scene: Scene) -> None:
    hosts = {c.endpoint.grant.relay_name for c in scene.calls.values() if c.endpoint.grant}
    assert len(hosts) == 1, hosts
    host = hosts.pop()
    pid = int(scene.relays()[host]["pid"])
    scene.facts["killed"] = host
    scene.facts["killed_at"] = scene.now()
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # a relay the stack started from this process

    async def moved() -> None:
        for call in scene.calls.values():
            move = await call.expect(T.MEDIA_MOVE, timeout=10)
            assert move["relay"] != host

    scene.run(moved())
    sleep(scene, 1.0)


@then(
    parsers.parse(
        "everyone is moved to another relay and hears everyone again within {limit:g} seconds "
        "of media gap"
    )
)
def moved_and_hearing(scene: Scene, limit: float, evidence: Evidence) -> None:
    killed_at = scene.facts["killed_at"]
    relay_of = {}
    flows: dict[str, dict[str, Any]] = {}
    for person, call in scene.calls.items():
        grant = call.endpoint.grant
        relay_of[person] = grant.relay_name if grant is not None else None
        for other, sender in scene.calls.items():
            if other == person or sender.source is None:
                continue
            times = [a.at for a in call.from_source(sender.source.ssrc)]
            before = [t for t in times if t <= killed_at]
            after = [t for t in times if t > killed_at]
            gap = round(after[0] - before[-1], 3) if before and after else None
            flows[f"{other} -> {person}"] = {
                "before": len(before),
                "after": len(after),
                "gap": gap,
            }
    evidence.write_json("media-gaps.json", {"relays": relay_of, "flows": flows})
    checks.moved_off_relay(relay_of, scene.facts["killed"])
    checks.media_back_within(flows, limit)


@then("nobody left the conference")
def nobody_left(scene: Scene) -> None:
    assert scene.admin is not None
    records = [
        r
        for r in scene.admin.call("GET", "/v1/statistics/cdr")
        if r["conference_id"] == scene.conference_id
    ]
    checks.nobody_left({p: call.types() for p, call in scene.calls.items()}, records)


@then("a replacement relay is running in the media region")
def replaced(scene: Scene) -> None:
    wait_until(lambda: len(healthy_relays(scene)) >= 2, 60)
    checks.relay_replaced(healthy_relays(scene), scene.facts["killed"], relays=2)


# -- MT-08: the PSTN leg ----------------------------------------------------------------------


@given(parsers.parse('"{first}" talks a {hz1:d} Hz tone and "{second}" a {hz2:d} Hz tone'))
def tones(scene: Scene, first: str, hz1: int, second: str, hz2: int) -> None:
    start_talking(scene, {first: hz1, second: hz2})
    scene.facts["speakers"] = {first: hz1, second: hz2}


class Phone:
    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.heard: list[RtpPacket] = []

    def read(self) -> None:
        while True:
            try:
                self.heard.append(RtpPacket.parse(self.sock.recv(2048)))
            except BlockingIOError:
                return

    async def talk(self, hz: float, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        source = AudioSource(ssrc=0x5EED, tone_hz=hz, with_audio_level=False)
        start = loop.time()
        for n in range(int(seconds / 0.02)):
            self.sock.sendto(source.next_frame()[0].build(), self.gateway)
            self.read()
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))
        await asyncio.sleep(0.3)
        self.read()


@when(parsers.parse('a phone "{caller}" dials in with the PIN "{pin}" and talks a {hz:d} Hz tone'))
def phone_dials(scene: Scene, caller: str, pin: str, hz: int, evidence: Evidence) -> None:
    with PstnTrunk.for_region(scene.home, scene.region) as trunk:
        answer = trunk.dial(scene.conference_id, caller, pin)
        assert answer["state"] == "in_conference", answer
        phone = Phone((answer["phone_media"]["host"], answer["phone_media"]["port"]))
        scene.run(phone.talk(hz, 2.0))
        view = trunk.call(answer["call_id"])
    evidence.write_json("pstn-call.json", view)
    scene.facts.update(phone=phone, call=answer, caller=caller, phone_hz=hz)


@then(parsers.parse("the phone hears {hz1:d} Hz and {hz2:d} Hz but not its own {own:d} Hz"))
def phone_hears(scene: Scene, hz1: int, hz2: int, own: int, evidence: Evidence) -> None:
    phone: Phone = scene.facts["phone"]
    samples = [s for p in phone.heard[10:] for s in g711.decode(p.payload)]
    levels = {hz: round(g711.tone_level(samples, hz)) for hz in (hz1, hz2, own, 1500)}
    evidence.write_json("phone-hears.json", levels)
    checks.phone_hears(
        packets=len(phone.heard),
        payload_types={p.payload_type for p in phone.heard},
        levels=levels,
        heard=(hz1, hz2),
        silent=(own, 1500),
    )


@then(parsers.parse('"{first}" and "{second}" hear the phone\'s {hz:d} Hz tone over SRTP'))
def conference_hears_phone(scene: Scene, first: str, second: str, hz: int) -> None:
    speakers = {0x1000 + i for i in range(len(scene.calls))}
    heard = {}
    for person in (first, second):
        call = scene.calls[person]
        frames = [a for a in call.arrivals if a.packet.ssrc not in speakers]
        samples = [s for a in frames[5:] for s in g711.decode(a.packet.payload)]
        heard[person] = {
            "frames": len(frames),
            "level": round(g711.tone_level(samples, hz)),
            "bad_tags": call.endpoint.counters.dropped_bad_tag,
        }
    checks.conference_hears_phone(heard, hz)


@then("the roster marks the phone's leg unencrypted and every other leg encrypted")
def roster_marks(scene: Scene) -> None:
    account = f"pstn:{scene.facts['caller']}"
    owner = next(iter(scene.calls.values()))
    rosters = [m for m in owner.signal.received if m["type"] == T.ROSTER]
    with_phone = [r for r in rosters if any(p["account_id"] == account for p in r["participants"])]
    legs = {p["account_id"]: p for p in (with_phone[-1]["participants"] if with_phone else [])}
    checks.phone_leg_only_unencrypted(legs, account, others=len(scene.calls))


@when(parsers.parse('the phone hangs up and "{person}" ends the conference'))
def hang_up_and_end(scene: Scene, person: str) -> None:
    with PstnTrunk.for_region(scene.home, scene.region) as trunk:
        assert trunk.hang_up(scene.facts["call"]["call_id"])["state"] == "ended"
    scene.apis[person].end(scene.conference_id)


@then("the call record marks the phone's leg unencrypted and every other leg encrypted")
def cdr_marks(scene: Scene, evidence: Evidence) -> None:
    assert scene.admin is not None
    records = [
        r
        for r in scene.admin.call("GET", "/v1/statistics/cdr")
        if r["conference_id"] == scene.conference_id
    ]
    evidence.write_json("call-record.json", records)
    legs = {leg["account_id"]: leg for r in records[-1:] for leg in r["legs"]}
    checks.phone_leg_only_unencrypted(
        legs, f"pstn:{scene.facts['caller']}", others=len(scene.calls), transport_prefix="pstn"
    )


@then(parsers.parse('a phone dialling in with the PIN "{pin}" is refused'))
def wrong_pin(scene: Scene, pin: str) -> None:
    conference = scene.apis[next(iter(scene.apis))].create_conference("PIN", password="9753")
    with PstnTrunk.for_region(scene.home, scene.region) as trunk:
        answer = trunk.dial(conference["conference_id"], "+15550999", pin)
    checks.dial_in_refused(answer, because="password")
