"""MT-07 live: the interop gateway process against the meeting region sa of the shared stack.

SIP INVITEs over TLS with SRTP offers are admitted by the meeting's rules and recorded as encrypted
legs (unless the enterprise withdrew Teams access: then 403); plain RTP offers, `sip:` URIs and
non-TLS transports are refused; the process has no plain
SIP listener (its sockets are read with psutil and probed); TLS 1.1 is refused; an H.323 Setup
without H.235 is released with securityDenied and one with H.235.6 is connected. Every check is
also run against something that should fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from media_core import g711
from media_core.rtp import RtpPacket
from media_core.sources import AudioSource
from media_core.srtp import Direction, KeyMaterial, SrtpSession
from protocol.errors import ErrorCode
from protocol.meeting_client import MeetingApi, Signal
from protocol.signaling import Admit, Auth, End, Join, MessageType
from protocol.stack import Stack
from roomtrust.comply import tlsprobe
from roomtrust.harness.call import MediaCall
from roomtrust.harness.interop import GatewayProcess, start_gateway
from services.common.tls import client_context
from services.meeting.interop import h323, sdp, sip
from services.meeting.interop.client import (
    H323Caller,
    SipTlsCaller,
    listening_sockets,
    plain_sip_answer,
)
from services.meeting.relay.files import interop_token


@pytest.fixture(scope="module")
def interop(meeting_stack: Stack) -> Iterator[GatewayProcess]:
    gateway = start_gateway(meeting_stack.home, "sa")
    try:
        yield gateway
    finally:
        gateway.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def legs(admin: MeetingApi, conference_id: str) -> list[dict[str, Any]]:
    records = admin.call("GET", "/v1/statistics/cdr")
    return [leg for r in records if r["conference_id"] == conference_id for leg in r["legs"]]


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def sip_caller(gw: GatewayProcess) -> SipTlsCaller:
    return SipTlsCaller(gw.host, gw.sip_port, gw.ca_file)


def h323_caller(gw: GatewayProcess) -> H323Caller:
    return H323Caller(gw.host, gw.h323_port, gw.ca_file)


async def open_call(api: MeetingApi) -> MediaCall:
    signal = api.signaling()
    await signal.__aenter__()
    return await MediaCall(signal).open()


async def close_calls(calls: list[MediaCall]) -> None:
    for call in calls:
        await call.close()
        with contextlib.suppress(Exception):
            await call.signal.__aexit__()


async def moderator(api: MeetingApi, conference_id: str, password: str) -> Signal:
    sig = await api.signaling().__aenter__()
    await sig.send(Join(conference_id, password).encode())
    await sig.expect(MessageType.ADMITTED)
    return sig


# -- SIP -------------------------------------------------------------------------------------------


def test_sip_invite_over_tls_with_srtp_is_admitted_and_recorded_as_encrypted(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    cid = admin_sa.member("Olive Owner").create_conference("Interop SIP")["conference_id"]

    async def scenario() -> None:
        caller = await sip_caller(interop).connect()
        assert caller.stream is not None and caller.stream.tls_version in ("TLSv1.2", "TLSv1.3")
        invite = caller.invite(cid)
        ok = await caller.call(invite)
        assert ok.status == 200, ok.header("Warning")
        provisional = [m.status for m in caller.received if isinstance(m, sip.SipResponse)]
        assert provisional == [100, 200]
        answer = sdp.Session.parse(ok.body.decode())
        assert [(m.kind, m.proto) for m in answer.media] == [("audio", "RTP/SAVP")]
        crypto = sdp.parse_crypto(answer.media[0].values("crypto")[0])
        assert isinstance(crypto, sdp.Crypto) and crypto.key != caller.key
        [leg] = wait_for(lambda: legs(admin_sa, cid))
        assert (leg["transport"], leg["encrypted"], leg["left_at"]) == ("sips+srtp", True, None)
        assert leg["account_id"].startswith("sips:") and "room-12" not in leg["account_id"]
        bye = await caller.hang_up(invite.uri)
        assert bye.status == 200
        await caller.close()

    run(scenario())
    # The gateway leaves on BYE; were its socket to drop instead, the resume grace (10 s) of a
    # resumable participant would close the leg: either way the leg ends.
    assert wait_for(lambda: legs(admin_sa, cid)[0]["left_at"] is not None, timeout=15.0)


def test_a_plain_rtp_offer_is_refused_with_488_and_never_joins(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    cid = admin_sa.member("Paul Plain").create_conference("Interop plain")["conference_id"]

    async def scenario() -> None:
        caller = await sip_caller(interop).connect()
        refused = await caller.call(caller.invite(cid, proto="RTP/AVP", with_key=False))
        assert refused.status == 488
        assert "plain RTP" in (refused.header("Warning") or "")
        # the same caller with an SRTP offer is admitted: the refusal was the offer's doing
        accepted = await caller.call(caller.invite(cid))
        assert accepted.status == 200
        await caller.close()

    run(scenario())
    assert [leg["transport"] for leg in wait_for(lambda: legs(admin_sa, cid))] == ["sips+srtp"]


def test_without_teams_access_the_gateway_s_room_systems_are_refused_and_never_join(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    cid = admin_sa.member("Tina Teams").create_conference("Interop gated")["conference_id"]
    admin_sa.call("PUT", "/v1/enterprise/teams-access", json={"interop_enabled": False})

    async def refused() -> None:
        caller = await sip_caller(interop).connect()
        answer = await caller.call(caller.invite(cid))
        assert answer.status == 403, answer.header("Warning")
        await caller.close()

    run(refused())
    assert legs(admin_sa, cid) == []
    # the same call once the administrator allows the gateway: admitted
    admin_sa.call("PUT", "/v1/enterprise/teams-access", json={"interop_enabled": True})

    async def admitted() -> None:
        caller = await sip_caller(interop).connect()
        invite = caller.invite(cid)
        assert (await caller.call(invite)).status == 200
        assert (await caller.hang_up(invite.uri)).status == 200
        await caller.close()

    run(admitted())
    assert [leg["transport"] for leg in wait_for(lambda: legs(admin_sa, cid))] == ["sips+srtp"]


def test_sip_uris_and_transports_other_than_tls_are_refused(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    cid = admin_sa.member("Tina Tls").create_conference("Interop URIs")["conference_id"]

    async def scenario() -> None:
        caller = await sip_caller(interop).connect()
        for options, status in [
            ({"scheme": "sip"}, 416),
            ({"uri_params": ";transport=udp"}, 403),
            ({"uri_params": ";transport=tcp"}, 403),
            ({"via_transport": "UDP"}, 403),
            ({"contact": "<sip:room-12@127.0.0.1:5060>"}, 403),
        ]:
            response = await caller.call(caller.invite(cid, **options))
            assert response.status == status, (options, response.status)
            assert "TLS" in (response.header("Warning") or "")
        await caller.close()

    run(scenario())
    assert legs(admin_sa, cid) == []


def test_the_meetings_lobby_and_password_rules_apply_to_sip(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    owner = admin_sa.member("Lena Lobby")
    cid = owner.create_conference("Locked interop", locked=True, password="4321")["conference_id"]

    async def scenario() -> None:
        mod = await moderator(owner, cid, "4321")
        caller = await sip_caller(interop).connect()
        wrong = await caller.call(caller.invite(cid, password="0000"))
        assert wrong.status == 403
        invite = caller.invite(cid, password="4321")
        await caller.send(invite.encode())
        queued = await caller.next()
        queued = queued if isinstance(queued, sip.SipResponse) and queued.status != 100 else None
        queued = queued or await caller.next()
        assert isinstance(queued, sip.SipResponse) and queued.status == 182
        knock = await mod.expect(MessageType.LOBBY_KNOCK)
        assert knock["participant"]["display_name"] == "Polycom Room"
        await mod.send(Admit(knock["participant"]["participant_id"]).encode())
        ok = await caller.final()
        assert ok.status == 200
        # the moderator ends the conference: the gateway hangs the SIP system up with a BYE
        await mod.send(End().encode())
        bye = await caller.next()
        assert isinstance(bye, sip.SipRequest) and bye.method == "BYE"
        assert bye.call_id == caller.call_id
        await caller.close()
        await mod.__aexit__()

    run(scenario())


def test_media_between_a_sip_system_and_the_conference_flows_only_as_srtp(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    """The SDES keys agreed over SIP TLS carry the call: the conference hears the SIP system's
    SRTP audio and never its plain RTP, and the SIP system receives the conference only as SRTP
    under the gateway's key."""
    owner = admin_sa.member("Mia Media")
    cid = owner.create_conference("Interop media")["conference_id"]
    rtp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp_socket.bind(("127.0.0.1", 0))
    rtp_socket.setblocking(False)

    async def scenario() -> tuple[MediaCall, list[bytes], KeyMaterial]:
        member = await open_call(owner)
        await member.join(cid)
        await member.keys()
        member.start_audio(AudioSource(ssrc=440, tone_hz=440, with_audio_level=False))
        caller = await sip_caller(interop).connect()
        ok = await caller.call(caller.invite(cid, media_port=rtp_socket.getsockname()[1]))
        assert ok.status == 200
        answer = sdp.Session.parse(ok.body.decode())
        crypto = sdp.parse_crypto(answer.media[0].values("crypto")[0])
        assert isinstance(crypto, sdp.Crypto)
        gateway_media = (answer.connection or "", answer.media[0].port)
        protect = SrtpSession(caller.key, Direction.OUTBOUND)
        secure = AudioSource(ssrc=0x51B, tone_hz=1000, with_audio_level=False)
        plain = AudioSource(ssrc=0x0BAD, tone_hz=1500, with_audio_level=False)
        received: list[bytes] = []
        for _ in range(75):
            rtp_socket.sendto(protect.protect(secure.next_frame()[0].build()), gateway_media)
            rtp_socket.sendto(plain.next_frame()[0].build(), gateway_media)
            await asyncio.sleep(0.02)
            with contextlib.suppress(BlockingIOError):
                while True:
                    received.append(rtp_socket.recv(2048))
        await asyncio.sleep(0.3)
        with contextlib.suppress(BlockingIOError):
            while True:
                received.append(rtp_socket.recv(2048))
        await caller.close()
        await member.stop_audio()
        await close_calls([member])
        return member, received, crypto.key

    try:
        member, received, gateway_key = run(scenario())
    finally:
        rtp_socket.close()
    from_sip = [a.packet for a in member.arrivals if a.packet.ssrc != 440]
    assert len(from_sip) > 25, len(from_sip)
    samples = [x for packet in from_sip[5:] for x in g711.decode(packet.payload)]
    assert g711.tone_level(samples, 1000) > 2000  # the SRTP leg is heard
    assert g711.tone_level(samples, 1500) < 300  # the plain RTP never reached the conference
    assert len(received) > 25, len(received)
    unprotect = SrtpSession(gateway_key, Direction.INBOUND)
    heard = [RtpPacket.parse(unprotect.unprotect(data)) for data in received]  # all SRTP
    tone = [x for packet in heard[5:] for x in g711.decode(packet.payload)]
    assert g711.tone_level(tone, 440) > 2000
    on_the_wire = [x for data in received[5:] for x in g711.decode(data[12:-10])]
    assert g711.tone_level(on_the_wire, 440) < 1000  # the tone is not on the wire in the clear


def test_signaling_takes_an_interop_sign_in_only_with_the_regions_token(
    interop: GatewayProcess, meeting_stack: Stack
) -> None:
    endpoint = meeting_stack.endpoint("meeting", "sa")
    url, ca_file = endpoint.url, endpoint.ca_file
    token = interop_token(meeting_stack.home, "sa")

    async def sign_in(**fields: Any) -> dict[str, Any]:
        uri = url.replace("https://", "wss://") + "/v1/signaling"
        async with websockets.connect(uri, ssl=client_context(ca_file)) as ws:
            await ws.send(json.dumps(Auth(caller="sips:x@example.com", **fields).encode()))
            answer: dict[str, Any] = json.loads(await ws.recv())
            return answer

    async def scenario() -> None:
        good = await sign_in(interop_token=token, protocol="h323", name="Room")
        assert good["type"] == MessageType.HELLO and good["account_id"].startswith("h323:")
        forged = await sign_in(interop_token="not-the-token", protocol="sips")
        assert (forged["type"], forged["error"]) == (MessageType.ERROR, ErrorCode.UNAUTHENTICATED)
        unknown = await sign_in(interop_token=token, protocol="sip")
        assert (unknown["type"], unknown["field"]) == (MessageType.ERROR, "protocol")

    run(scenario())


# -- no plain listener, no old TLS -----------------------------------------------------------------


def test_the_gateway_listens_only_on_its_two_tls_ports(interop: GatewayProcess) -> None:
    def idle_sockets() -> list[Any]:
        found = listening_sockets(interop.pid)
        return found if not [s for s in found if s.kind == "udp"] else []

    sockets = wait_for(idle_sockets)
    assert {(s.kind, s.port) for s in sockets} == {
        ("tcp", interop.sip_port),
        ("tcp", interop.h323_port),
    }
    assert all(s.host == "127.0.0.1" for s in sockets)  # loopback only
    for port in (interop.sip_port, interop.h323_port, 5060):
        assert plain_sip_answer(interop.host, port, "TCP") is None
        assert plain_sip_answer(interop.host, port, "UDP") is None
    for port in (interop.sip_port, interop.h323_port):
        report = tlsprobe.probe(interop.host, port)
        assert report.strong, report.findings()


class PlainSipResponder:
    """What the check must catch: a plaintext SIP listener answering OPTIONS over TCP and UDP."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        answer = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(answer)
            except OSError:
                pass
            try:
                _, address = self.udp.recvfrom(65536)
                self.udp.sendto(answer, address)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.tcp.close()
        self.udp.close()


def test_the_listener_check_catches_a_plain_sip_listener() -> None:
    responder = PlainSipResponder()
    try:
        found = {(s.kind, s.port) for s in listening_sockets(os.getpid())}
        assert {("tcp", responder.port), ("udp", responder.port)} <= found
        assert plain_sip_answer("127.0.0.1", responder.port, "TCP") == "SIP/2.0 200 OK"
        assert plain_sip_answer("127.0.0.1", responder.port, "UDP") == "SIP/2.0 200 OK"
    finally:
        responder.close()


def test_tls_1_1_is_refused_on_both_ports(interop: GatewayProcess) -> None:
    async def scenario() -> None:
        for caller in (sip_caller(interop), h323_caller(interop)):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await caller.connect(maximum=ssl.TLSVersion.TLSv1_1)
            await caller.connect(maximum=ssl.TLSVersion.TLSv1_2)
            assert caller.stream is not None and caller.stream.tls_version == "TLSv1.2"
            await caller.close()

    run(scenario())


def test_the_tls_1_1_check_really_offers_tls_1_1(interop: GatewayProcess) -> None:
    """Against a server that accepts TLS 1.1, the same client gets TLS 1.1: the refusal above is
    the gateway's, not this machine's OpenSSL refusing to offer it."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    directory = interop.ca_file.parents[1] / "interop"
    server_ctx.load_cert_chain(directory / "server.pem", directory / "server.key")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    server_ctx.set_ciphers("ALL:@SECLEVEL=0")

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        weak = SipTlsCaller("127.0.0.1", port, interop.ca_file)
        await weak.connect(maximum=ssl.TLSVersion.TLSv1_1)
        assert weak.stream is not None and weak.stream.tls_version == "TLSv1.1"
        await weak.close()
        server.close()

    run(scenario())


# -- H.323 -----------------------------------------------------------------------------------------


def test_an_h323_setup_without_h235_is_released_with_security_denied(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    cid = admin_sa.member("Hugo Plain").create_conference("H.323 plain")["conference_id"]

    async def scenario() -> None:
        for tokens, channels in [
            ([], [h323.plain_audio("127.0.0.1", 40002)]),  # no H.235 at all
            (None, [h323.plain_audio("127.0.0.1", 40002)]),  # DH agreed, media in the clear
            ([{"tokenOID": h323.OID_H235_V3}, {"tokenOID": h323.OID_DH1024, "dhkey": {}}], None),
        ]:
            caller = await h323_caller(interop).connect()
            await caller.send(caller.setup(cid, tokens=tokens, channels=channels))
            release = await caller.answer()
            assert release.name == "releaseComplete"
            assert release.body["reason"] == "securityDenied"
            assert await caller.next() is None  # and the gateway hangs up the connection
            await caller.close()

    run(scenario())
    assert legs(admin_sa, cid) == []


def test_an_h323_setup_with_h235_is_connected_and_recorded_as_encrypted(
    interop: GatewayProcess, admin_sa: MeetingApi
) -> None:
    owner = admin_sa.member("Hana Secure")
    cid = owner.create_conference("H.323 secure", password="2468")["conference_id"]

    async def scenario() -> None:
        wrong = await h323_caller(interop).connect()
        await wrong.send(wrong.setup(f"{cid}*1357"))
        refused = await wrong.answer()
        assert refused.body["reason"] == "noPermission"
        await wrong.close()
        caller = await h323_caller(interop).connect()
        await caller.send(caller.setup(f"{cid}*2468"))
        connect = await caller.answer()
        assert connect.name == "connect", connect.body
        assert [m.name for m in caller.received] == ["callProceeding", "connect"]
        keys = caller.media_keys(connect)
        assert set(keys) == {"gatewayToCaller", "callerToGateway"}
        [leg] = wait_for(lambda: legs(admin_sa, cid))
        assert (leg["transport"], leg["encrypted"]) == ("h323+h235", True)
        await caller.send(h323.release_complete(connect, "undefinedReason"))
        assert await caller.next() is None
        await caller.close()

    run(scenario())
    assert wait_for(lambda: legs(admin_sa, cid)[0]["left_at"] is not None)
