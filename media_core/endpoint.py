"""A participant's media endpoint, sans-IO: keys from signaling, SRTP both ways, playout, quality.

The meeting client, the PSTN gateway and the test and bench participants all run this object and
only move bytes for it. Signaling hands it relay grants (docs/meeting-api.md) in three forms:

- `media.keys`: the first keys and the relay's address. Fresh sessions both ways.
- `media.keys` with `"rekey": true` (someone was removed): staged. The endpoint protects with the
  new send key at once and keeps the old receive key until a packet opens under the new one, as the
  relay switches its side over when the first packet under our new send key reaches it.
- `media.move` (the relay failed): a new relay with fresh keys. Every session is replaced, and the
  new relay learns our address from our next packet; we never open a port for it (MT-12).

There is no way to send without keys: `protect` returns nothing until a grant has arrived. What
arrives is accepted only from the current relay's address and only if it authenticates; everything
else is dropped and counted by kind. Authenticated RTP feeds per-source receive statistics (loss,
jitter) and, optionally, a jitter buffer per source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import NamedTuple

from media_core.jitter import JitterBuffer, Playout
from media_core.quality import CallQuality, ReceiveStatistics
from media_core.rtp import RtpError, RtpPacket, is_rtcp
from media_core.sources import AUDIO_CLOCK, PCMU, VIDEO_CLOCK
from media_core.srtp import (
    Direction,
    KeyMaterial,
    KeyMaterialError,
    SrtpError,
    SrtpFailure,
    SrtpProfile,
    SrtpSession,
)

Address = tuple[str, int]
KEYS = "media.keys"
MOVE = "media.move"


class GrantError(ValueError):
    """A key message that is not a usable grant."""


@dataclass(frozen=True)
class MediaGrant:
    """One participant's keys with one relay, as signaling delivers them."""

    participant_id: str
    conference_id: str
    relay_name: str
    relay: Address
    send: KeyMaterial
    receive: KeyMaterial

    @classmethod
    def from_message(cls, message: Mapping[str, object]) -> MediaGrant:
        try:
            profile = SrtpProfile(str(message["profile"]))
            media = message["media"]
            if not isinstance(media, Mapping):
                raise GrantError("media must be an object with host and port")
            host, port = str(media["host"]), int(media["port"])
            send = KeyMaterial.decode(profile, str(message["send_key"]))
            receive = KeyMaterial.decode(profile, str(message["receive_key"]))
        except KeyError as exc:
            raise GrantError(f"a grant needs {exc.args[0]}") from None
        except (KeyMaterialError, ValueError, TypeError) as exc:
            raise GrantError(str(exc)) from None
        if not 0 < port < 65536:
            raise GrantError("the relay port is out of range")
        return cls(
            str(message.get("participant_id", "")),
            str(message.get("conference_id", "")),
            str(message.get("relay", "")),
            (host, port),
            send,
            receive,
        )


@dataclass(slots=True)
class EndpointCounters:
    sent: int = 0
    received: int = 0
    opened: int = 0
    rtcp: int = 0
    dropped_no_keys: int = 0
    dropped_not_from_relay: int = 0
    dropped_bad_tag: int = 0
    dropped_replay: int = 0
    dropped_malformed: int = 0
    rekeys: int = 0
    moves: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Outbound(NamedTuple):
    """Send `data` to `address` (the current relay)."""

    address: Address
    data: bytes


class MediaEndpoint:
    def __init__(self, jitter_delay: float | None = 0.06) -> None:
        self.jitter_delay = jitter_delay
        self.grant: MediaGrant | None = None
        self.counters = EndpointCounters()
        self.statistics: dict[int, ReceiveStatistics] = {}
        self.buffers: dict[int, JitterBuffer] = {}
        self._outbound: SrtpSession | None = None
        self._inbound: SrtpSession | None = None
        self._previous_inbound: SrtpSession | None = None

    # -- keys --------------------------------------------------------------------------------

    @property
    def relay(self) -> Address | None:
        return self.grant.relay if self.grant is not None else None

    @property
    def rekey_pending(self) -> bool:
        return self._previous_inbound is not None

    def apply(self, grant: MediaGrant, *, rekey: bool = False) -> None:
        """Install a grant: staged on a re-key with the same relay, otherwise fresh sessions."""
        staged = rekey and self.grant is not None and grant.relay == self.grant.relay
        if self.grant is not None:
            if staged:
                self.counters.rekeys += 1
            else:
                self.counters.moves += 1
        self._previous_inbound = self._inbound if staged else None
        self._inbound = SrtpSession(grant.receive, Direction.INBOUND)
        self._outbound = SrtpSession(grant.send, Direction.OUTBOUND)
        self.grant = grant

    def handle_message(self, message: Mapping[str, object]) -> bool:
        """Apply a `media.keys` or `media.move` message; False for any other message."""
        kind = message.get("type")
        if kind not in (KEYS, MOVE):
            return False
        self.apply(
            MediaGrant.from_message(message), rekey=kind == KEYS and bool(message.get("rekey"))
        )
        return True

    # -- sending -----------------------------------------------------------------------------

    def protect(self, rtp: bytes) -> Outbound | None:
        """The SRTP datagram for the relay, or None while there are no keys."""
        if self._outbound is None or self.grant is None:
            return None
        data = self._outbound.protect_rtcp(rtp) if is_rtcp(rtp) else self._outbound.protect(rtp)
        self.counters.sent += 1
        return Outbound(self.grant.relay, data)

    # -- receiving ---------------------------------------------------------------------------

    def datagram_received(self, address: Address, data: bytes, now: float) -> RtpPacket | None:
        """The RTP packet a datagram from the relay carries; None if dropped (or RTCP)."""
        counters = self.counters
        counters.received += 1
        if self._inbound is None or self.grant is None:
            counters.dropped_no_keys += 1
            return None
        if address != self.grant.relay:
            counters.dropped_not_from_relay += 1
            return None
        rtcp = is_rtcp(data)
        try:
            plain = self._open(data, rtcp)
        except SrtpError as exc:
            if exc.kind is SrtpFailure.REPLAY:
                counters.dropped_replay += 1
            elif exc.kind is SrtpFailure.BAD_TAG:
                counters.dropped_bad_tag += 1
            else:
                counters.dropped_malformed += 1
            return None
        counters.opened += 1
        if rtcp:
            counters.rtcp += 1
            return None
        try:
            packet = RtpPacket.parse(plain)
        except RtpError:
            counters.dropped_malformed += 1
            return None
        clock = AUDIO_CLOCK if packet.payload_type == PCMU else VIDEO_CLOCK
        stats = self.statistics.get(packet.ssrc)
        if stats is None:
            stats = self.statistics[packet.ssrc] = ReceiveStatistics(packet.ssrc, clock)
        stats.update(packet.sequence_number, packet.timestamp, now)
        if self.jitter_delay is not None:
            buffer = self.buffers.get(packet.ssrc)
            if buffer is None:
                buffer = self.buffers[packet.ssrc] = JitterBuffer(clock, self.jitter_delay)
            buffer.push(packet, now)
        return packet

    def _open(self, data: bytes, rtcp: bool) -> bytes:
        assert self._inbound is not None
        try:
            plain = self._inbound.unprotect_rtcp(data) if rtcp else self._inbound.unprotect(data)
        except SrtpError as exc:
            previous = self._previous_inbound
            if previous is None or exc.kind is not SrtpFailure.BAD_TAG:
                raise
            return previous.unprotect_rtcp(data) if rtcp else previous.unprotect(data)
        self._previous_inbound = None  # the relay has switched to our new receive key
        return plain

    def playout(self, now: float) -> list[tuple[int, Playout]]:
        """Every buffered packet due by `now`, with its source's SSRC."""
        out: list[tuple[int, Playout]] = []
        for ssrc, buffer in self.buffers.items():
            out += [(ssrc, item) for item in buffer.pop(now)]
        return out

    def quality(self, ssrc: int, rtt_ms: float | None = None) -> CallQuality:
        """Loss, jitter and the E-model MOS of what arrived from one source so far."""
        stats = self.statistics[ssrc]
        loss = stats.cumulative_lost / stats.expected if stats.expected > 0 else 0.0
        delay_ms = (self.jitter_delay or 0.0) * 1000
        return CallQuality.from_figures(
            max(0.0, loss), stats.jitter_seconds * 1000, rtt_ms, jitter_buffer_ms=delay_ms
        )
