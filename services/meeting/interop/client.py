"""Third-party systems and probes against the interop gateway, for tests, features and operators.

- `SipTlsCaller`: a SIP room system calling over TLS: INVITE with an SDP offer, ACK, BYE, and the
  requests the gateway sends it (BYE when the conference ends).
- `H323Caller`: an H.323 room system: a Setup with or without H.235.6, reading the gateway's
  answers and opening the media keys its Connect wraps.
- `listening_sockets(pid)`: every TCP socket the process listens on and every UDP socket it has,
  from psutil; `plain_sip_answer()`: whether plaintext SIP over TCP or UDP gets any SIP answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from media_core.srtp import KeyMaterial, SrtpProfile
from services.common.tls import client_context
from services.meeting.interop import h323, sdp, sip

SRTP_PROFILE = SrtpProfile.AES_CM_128_HMAC_SHA1_80


def tls_context(ca_file: Path | str, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context trusting the region CA; with `maximum` below TLS 1.2 it is opened up
    (`@SECLEVEL=0`) so that the old protocol is really offered to the server."""
    if maximum is None:
        return client_context(ca_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


class _Stream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def tls_version(self) -> str | None:
        obj = self.writer.get_extra_info("ssl_object")
        return obj.version() if obj is not None else None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@dataclass
class SipTlsCaller:
    """A third-party SIP system on one TLS connection to the gateway."""

    host: str
    port: int
    ca_file: Path
    name: str = "Polycom Room"
    user: str = "room-12"
    stream: _Stream | None = None
    parser: sip.SipStream = field(default_factory=sip.SipStream)
    received: list[sip.SipRequest | sip.SipResponse] = field(default_factory=list)
    _queue: list[sip.SipRequest | sip.SipResponse] = field(default_factory=list)
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(8)}@caller.example")
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    cseq: int = 0
    dialog_to: str | None = None
    key: KeyMaterial = field(
        default_factory=lambda: KeyMaterial.generate(SRTP_PROFILE, secrets.token_bytes)
    )

    async def connect(self, maximum: ssl.TLSVersion | None = None) -> SipTlsCaller:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=tls_context(self.ca_file, maximum), server_hostname=self.host
        )
        self.stream = _Stream(reader, writer)
        return self

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()

    async def send(self, data: bytes) -> None:
        assert self.stream is not None, "connect first"
        self.stream.writer.write(data)
        await self.stream.writer.drain()

    async def next(self, timeout: float = 10.0) -> sip.SipRequest | sip.SipResponse | None:
        """The next message from the gateway; None once it closed the connection."""
        assert self.stream is not None, "connect first"
        while not self._queue:
            data = await asyncio.wait_for(self.stream.reader.read(65536), timeout)
            if not data:
                return None
            for item in self.parser.feed(data):
                if isinstance(item, sip.SipRequest | sip.SipResponse):
                    self._queue.append(item)
                    self.received.append(item)
        return self._queue.pop(0)

    async def final(self, timeout: float = 10.0) -> sip.SipResponse:
        """Read responses until a final one (>= 200) arrives."""
        while True:
            message = await self.next(timeout)
            if message is None:
                raise ConnectionError("the gateway closed the connection")
            if isinstance(message, sip.SipResponse) and message.status >= 200:
                return message

    def request(
        self,
        method: str,
        uri: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        via_transport: str = "TLS",
        contact: str | None = None,
        to_tag: str | None = None,
        cseq: int | None = None,
        branch: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        max_forwards: int = 70,
    ) -> sip.SipRequest:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        headers = sip.Headers()
        branch = branch or f"z9hG4bK{secrets.token_hex(6)}"
        headers.add("Via", f"SIP/2.0/{via_transport} 127.0.0.1:5061;branch={branch}")
        headers.add("Max-Forwards", str(max_forwards))
        headers.add("From", f'"{self.name}" <sips:{self.user}@caller.example>;tag={self.tag}')
        to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
        headers.add("To", to)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("Contact", contact or f"<sips:{self.user}@127.0.0.1:5061>")
        for name, value in extra or []:
            headers.add(name, value)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return sip.SipRequest(headers, body, method, uri)

    def invite(
        self,
        conference: str,
        *,
        password: str | None = None,
        scheme: str = "sips",
        uri_params: str = "",
        media_port: int = 40000,
        proto: str = "RTP/SAVP",
        with_key: bool = True,
        **options: Any,
    ) -> sip.SipRequest:
        user = conference + (f"*{password}" if password is not None else "")
        uri = f"{scheme}:{user}@{self.host}:{self.port}{uri_params}"
        offer = sdp.offer("127.0.0.1", media_port, self.key if with_key else None, proto)
        return self.request(
            "INVITE", uri, body=offer.encode(), content_type="application/sdp", **options
        )

    async def call(self, invite: sip.SipRequest, timeout: float = 15.0) -> sip.SipResponse:
        """Send an INVITE, return its final response and ACK it (a 2xx opens the dialog)."""
        await self.send(invite.encode())
        while True:
            response = await self.final(timeout)
            if response.call_id == self.call_id and response.cseq.method == "INVITE":
                break
        to_tag = response.to.tag
        if response.status < 300:
            self.dialog_to = to_tag
        ack = self.request(
            "ACK", invite.uri, to_tag=to_tag, cseq=invite.cseq.number, branch=_branch(invite)
        )
        await self.send(ack.encode())
        return response

    async def hang_up(self, uri: str) -> sip.SipResponse:
        await self.send(self.request("BYE", uri, to_tag=self.dialog_to).encode())
        return await self.final()


def _branch(request: sip.SipRequest) -> str | None:
    return request.vias[0].branch if request.method != "ACK" else None


@dataclass
class H323Caller:
    """A third-party H.323 system on one TLS connection to the gateway's H.225.0 port."""

    host: str
    port: int
    ca_file: Path
    source: str = "Cisco SX80"
    stream: _Stream | None = None
    parser: h323.TpktStream = field(default_factory=h323.TpktStream)
    received: list[h323.H225] = field(default_factory=list)
    call_identifier: str = field(default_factory=lambda: secrets.token_hex(16))
    call_reference: int = field(default_factory=lambda: secrets.randbelow(0x7FFF) + 1)
    private: int = field(default_factory=lambda: h323.dh_private(secrets.token_bytes))

    async def connect(self, maximum: ssl.TLSVersion | None = None) -> H323Caller:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=tls_context(self.ca_file, maximum), server_hostname=self.host
        )
        self.stream = _Stream(reader, writer)
        return self

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()

    def secure_tokens(self) -> list[dict[str, Any]]:
        """H.235.6: the version 3 marker and a 2048-bit Diffie-Hellman half key."""
        return [{"tokenOID": h323.OID_H235_V3}, h323.dh_token(h323.dh_public(self.private))]

    def setup(
        self,
        destination: str,
        *,
        tokens: list[dict[str, Any]] | None = None,
        channels: list[dict[str, Any]] | None = None,
        media_port: int = 40002,
    ) -> h323.H225:
        return h323.setup_message(
            call_reference=self.call_reference,
            call_identifier=self.call_identifier,
            destination=destination,
            source=self.source,
            tokens=self.secure_tokens() if tokens is None else tokens,
            channels=(
                [h323.encrypted_audio("127.0.0.1", media_port)] if channels is None else channels
            ),
        )

    async def send(self, message: h323.H225 | bytes) -> None:
        assert self.stream is not None, "connect first"
        self.stream.writer.write(message if isinstance(message, bytes) else message.encode())
        await self.stream.writer.drain()

    async def next(self, timeout: float = 15.0) -> h323.H225 | None:
        assert self.stream is not None, "connect first"
        while True:
            data = await asyncio.wait_for(self.stream.reader.read(65536), timeout)
            if not data:
                return None
            for item in self.parser.feed(data):
                if isinstance(item, h323.H323Error):
                    raise item
                message = h323.H225.decode(item)
                self.received.append(message)
                return message  # one message per read on this simple client

    async def answer(self, timeout: float = 15.0) -> h323.H225:
        """Read until Connect or ReleaseComplete."""
        while True:
            message = await self.next(timeout)
            if message is None:
                raise ConnectionError("the gateway closed the connection")
            if message.name in ("connect", "releaseComplete"):
                return message

    def media_keys(self, connect: h323.H225) -> dict[str, KeyMaterial]:
        """Open the media keys a Connect wraps under the Diffie-Hellman secret."""
        offer = h323.dh_offer(connect.body.get("tokens"))
        if isinstance(offer, str):
            raise h323.H323Error(f"the Connect has no usable H.235.6 token: {offer}")
        kek = h323.key_encryption_key(self.private, offer.halfkey, self.call_identifier)
        keys = {}
        for channel in connect.body.get("fastStart", []):
            algorithm = channel["dataType"]["h235Media"]["encryptionAuthenticationAndIntegrity"][
                "encryptionCapability"
            ][0]
            wrapped = channel["encryptionSync"]["h235Key"]["secureSharedSecret"]
            keys[channel["direction"]] = h323.unwrap_key(kek, SrtpProfile(algorithm), wrapped)
        return keys


# -- probes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSocket:
    kind: str  # "tcp" or "udp"
    host: str
    port: int
    listening: bool


def listening_sockets(pid: int) -> list[OpenSocket]:
    """TCP sockets the process listens on and UDP sockets it holds (all UDP sockets can receive)."""
    found = []
    for conn in psutil.Process(pid).net_connections(kind="inet"):
        if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
            found.append(OpenSocket("tcp", conn.laddr.ip, conn.laddr.port, True))
        elif conn.type == socket.SOCK_DGRAM:
            found.append(OpenSocket("udp", conn.laddr.ip, conn.laddr.port, True))
    return sorted(found, key=lambda s: (s.kind, s.port))


def options_request(host: str, port: int, transport: str) -> bytes:
    """A plaintext SIP OPTIONS as a SIP system over UDP or TCP would send it."""
    headers = sip.Headers()
    headers.add("Via", f"SIP/2.0/{transport} 127.0.0.1:5060;branch=z9hG4bK{secrets.token_hex(6)}")
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:probe@127.0.0.1>;tag={secrets.token_hex(4)}")
    headers.add("To", f"<sip:{host}:{port}>")
    headers.add("Call-ID", f"{secrets.token_hex(8)}@probe")
    headers.add("CSeq", "1 OPTIONS")
    return sip.SipRequest(headers, b"", "OPTIONS", f"sip:{host}:{port}").encode()


def plain_sip_answer(host: str, port: int, transport: str, timeout: float = 1.0) -> str | None:
    """Send a plaintext SIP OPTIONS over "TCP" or "UDP"; the SIP status line that came back, or
    None when nothing SIP came back (refused, closed, TLS alert bytes, or silence)."""
    data = b""
    try:
        if transport == "UDP":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(timeout)
                udp.connect((host, port))
                udp.send(options_request(host, port, "UDP"))
                data = udp.recv(65536)
        else:
            with socket.create_connection((host, port), timeout=timeout) as tcp:
                tcp.sendall(options_request(host, port, "TCP"))
                while b"\r\n" not in data:
                    chunk = tcp.recv(65536)
                    if not chunk:
                        break
                    data += chunk
    except OSError:  # refused (ICMP port unreachable for UDP), reset, or timed out
        pass
    first = data.split(b"\r\n", 1)[0]
    return first.decode("latin-1") if first.startswith(b"SIP/2.0 ") else None
