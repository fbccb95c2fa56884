"""One PSTN dial-in call, sans-IO: a plain G.711 phone leg bridged into an SRTP conference (MT-08).

The phone side is what a carrier trunk delivers: RTP with PCMU (payload type 0) in the clear, from
one address, learned from its first packet (symmetric RTP). Every phone packet that is well-formed
PCMU is re-stamped with the bridge's own SSRC and protected by the conference side, a
`MediaEndpoint` with the keys signaling handed the gateway, so inside the conference the caller is
an SRTP participant like any other. What the relay forwards from the conference is authenticated,
played out per source through a jitter buffer, and on every 20 ms `tick` mixed (u-law decode, sum,
clip, encode) into one PCMU packet for the phone: the caller hears everyone at once.

Only the phone leg is unencrypted, and signaling marks it so in the roster and the CDR.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields, replace

from media_core import g711
from media_core.endpoint import MediaEndpoint, Outbound
from media_core.rtp import RtpError, RtpPacket
from media_core.sources import PCMU

Address = tuple[str, int]
MAX_PHONE_PACKET = 1200
PHONE_QUEUE = 8  # frames kept per conference source between ticks (160 ms)


@dataclass(slots=True)
class BridgeCounters:
    from_phone: int = 0
    to_conference: int = 0
    from_conference: int = 0
    to_phone: int = 0
    dropped_phone_malformed: int = 0
    dropped_phone_not_pcmu: int = 0
    dropped_phone_stranger: int = 0
    dropped_phone_no_keys: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class PstnBridge:
    def __init__(
        self,
        ssrc: int,
        phone_ssrc: int,
        first_sequence: int = 0,
        first_timestamp: int = 0,
        jitter_delay: float = 0.06,
    ) -> None:
        self.ssrc = ssrc  # ours inside the conference
        self.phone_ssrc = phone_ssrc  # ours towards the phone
        self.endpoint = MediaEndpoint(jitter_delay)
        self.counters = BridgeCounters()
        self.phone: Address | None = None
        self._sequence = first_sequence
        self._timestamp = first_timestamp
        self._queues: dict[int, deque[bytes]] = {}

    # -- phone to conference -----------------------------------------------------------------

    def phone_datagram(self, address: Address, data: bytes) -> list[Outbound]:
        counters = self.counters
        if self.phone is None:
            self.phone = address
        elif address != self.phone:
            counters.dropped_phone_stranger += 1
            return []
        if len(data) > MAX_PHONE_PACKET:
            counters.dropped_phone_malformed += 1
            return []
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            counters.dropped_phone_malformed += 1
            return []
        if packet.payload_type != PCMU:
            counters.dropped_phone_not_pcmu += 1
            return []
        counters.from_phone += 1
        out = self.endpoint.protect(replace(packet, ssrc=self.ssrc, csrcs=()).build())
        if out is None:
            counters.dropped_phone_no_keys += 1
            return []
        counters.to_conference += 1
        return [out]

    # -- conference to phone -----------------------------------------------------------------

    def conference_datagram(self, address: Address, data: bytes, now: float) -> None:
        if self.endpoint.datagram_received(address, data, now) is not None:
            self.counters.from_conference += 1

    def tick(self, now: float) -> list[Outbound]:
        """Every 20 ms: mix one due frame of every conference source into a packet for the phone."""
        for ssrc, playout in self.endpoint.playout(now):
            if playout.packet.payload_type == PCMU:
                queue = self._queues.setdefault(ssrc, deque(maxlen=PHONE_QUEUE))
                queue.append(playout.packet.payload)
        frames = [queue.popleft() for queue in self._queues.values() if queue]
        if not frames or self.phone is None:
            return []
        packet = RtpPacket(
            payload_type=PCMU,
            sequence_number=self._sequence & 0xFFFF,
            timestamp=self._timestamp & 0xFFFFFFFF,
            ssrc=self.phone_ssrc,
            payload=g711.mix(frames),
        )
        self._sequence += 1
        self._timestamp += g711.FRAME_SAMPLES
        self.counters.to_phone += 1
        return [Outbound(self.phone, packet.build())]
