"""One third-party call's media, sans-IO: SRTP with the third-party system on one side, SRTP with the
conference's relay on the other (MT-06, MT-07).

The caller side uses the keys the signaling leg agreed (SDES over SIP TLS, or the keys the gateway
wrapped under the H.235.6 Diffie-Hellman secret): what the caller sends is opened with its key, so a
plain RTP packet, or one under any other key, fails authentication and is dropped. Only PCMU audio
goes on; it is re-stamped with the bridge's own SSRC and protected for the relay by a
`MediaEndpoint` holding the relay grant that signaling handed the gateway. What the relay forwards
from the conference is authenticated, then protected with the gateway's key for the caller and sent
to the caller's address (one SSRC per conference source, as a selective forwarding unit does).

The caller's address is the one its offer gave; it moves (symmetric RTP, RFC 4961) only to the source
of a packet that authenticated. Nothing ever leaves this bridge in the clear.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from media_core.endpoint import MediaEndpoint, Outbound
from media_core.rtp import RtpError, RtpPacket, is_rtcp
from media_core.sources import PCMU
from media_core.srtp import Direction, KeyMaterial, SrtpError, SrtpSession

Address = tuple[str, int]


@dataclass(slots=True)
class BridgeCounters:
    from_caller: int = 0
    to_conference: int = 0
    from_conference: int = 0
    to_caller: int = 0
    dropped_caller_unauthenticated: int = 0
    dropped_caller_malformed: int = 0
    dropped_caller_not_pcmu: int = 0
    dropped_caller_rtcp: int = 0
    dropped_no_conference_keys: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SrtpBridge:
    def __init__(
        self,
        ssrc: int,
        from_caller: KeyMaterial,
        to_caller: KeyMaterial,
        caller: Address | None,
    ) -> None:
        self.ssrc = ssrc
        self.caller = caller
        self.counters = BridgeCounters()
        self.endpoint = MediaEndpoint(jitter_delay=None)
        self._inbound = SrtpSession(from_caller, Direction.INBOUND)
        self._outbound = SrtpSession(to_caller, Direction.OUTBOUND)

    def set_caller_keys(
        self, from_caller: KeyMaterial, to_caller: KeyMaterial, caller: Address | None
    ) -> None:
        """New keys for the caller side (a re-INVITE's new offer); the relay side is unchanged."""
        self._inbound = SrtpSession(from_caller, Direction.INBOUND)
        self._outbound = SrtpSession(to_caller, Direction.OUTBOUND)
        if caller is not None:
            self.caller = caller

    def caller_datagram(self, address: Address, data: bytes) -> list[Outbound]:
        counters = self.counters
        rtcp = is_rtcp(data) if len(data) >= 2 else False
        try:
            plain = self._inbound.unprotect_rtcp(data) if rtcp else self._inbound.unprotect(data)
        except SrtpError:
            counters.dropped_caller_unauthenticated += 1
            return []
        except ValueError:
            counters.dropped_caller_malformed += 1
            return []
        self.caller = address  # authenticated: this is where the caller is now
        if rtcp:
            counters.dropped_caller_rtcp += 1  # its reports describe the caller's leg only
            return []
        try:
            packet = RtpPacket.parse(plain)
        except RtpError:
            counters.dropped_caller_malformed += 1
            return []
        if packet.payload_type != PCMU:
            counters.dropped_caller_not_pcmu += 1
            return []
        counters.from_caller += 1
        out = self.endpoint.protect(replace(packet, ssrc=self.ssrc, csrcs=()).build())
        if out is None:
            counters.dropped_no_conference_keys += 1
            return []
        counters.to_conference += 1
        return [out]

    def conference_datagram(self, address: Address, data: bytes, now: float) -> list[Outbound]:
        packet = self.endpoint.datagram_received(address, data, now)
        if packet is None:
            return []
        self.counters.from_conference += 1
        if self.caller is None:
            return []
        try:
            protected = self._outbound.protect(packet.build())
        except SrtpError:
            return []
        self.counters.to_caller += 1
        return [Outbound(self.caller, protected)]
