"""The relay's forwarding core, sans-IO: datagrams in, datagrams to send out.

Each participant has its own keys with the relay: it protects what it sends with its *send* key
(the relay's inbound session) and unprotects what it receives with its *receive* key (the relay's
outbound session). A packet is unprotected with its sender's inbound session, then re-protected for
every other participant of the same conference with that participant's outbound session. The RTP
packet itself is not changed, so what a receiver unprotects is byte for byte what the sender
protected.

Nothing unauthenticated is forwarded. Every dropped datagram is counted by kind: oversized,
truncated, bad version, malformed, bad tag, replay, unknown source and plain (unprotected) RTP.
A plain packet cannot be told from a bad tag by cryptography; the relay calls an authentication
failure "plain" when its payload has far fewer distinct byte values than ciphertext would.

Participants never open a port for the relay (MT-12): the relay learns a participant's address from
its first packet that authenticates under that participant's keys, and re-learns it the same way.

Re-keying is staged: `rekey_participant` installs the next keys next to the current ones, and the
first packet that authenticates under the next send key switches both directions over. Removing a
participant drops its sessions at once, so its keys open nothing the relay sends afterwards.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

from media_core.rtcp import parse_compound
from media_core.rtp import PacketFault, RtpError, srtp_header_length
from media_core.srtp import (
    MAX_RTP_TO_PROTECT,
    MIN_TAG_LENGTH,
    Direction,
    KeyMaterial,
    LibsrtpError,
    SrtpError,
    SrtpFailure,
    SrtpSession,
)

Address = tuple[str, int]

# The largest datagram whose plaintext still fits libsrtp's buffer when it is re-protected.
MAX_DATAGRAM = MAX_RTP_TO_PROTECT + MIN_TAG_LENGTH
SRTCP_MIN = 8 + 4 + MIN_TAG_LENGTH  # header with SSRC, E flag and index, smallest tag
PLAIN_SAMPLE = 256


class Send(NamedTuple):
    """Send `data` to `address` (the only action the core emits)."""

    address: Address
    data: bytes


@dataclass(frozen=True)
class ParticipantKeys:
    """Keys named from the participant's side: it protects with `send`, unprotects with `receive`."""

    send: KeyMaterial
    receive: KeyMaterial


@dataclass(slots=True)
class RelayCounters:
    received: int = 0
    accepted: int = 0
    forwarded: int = 0
    rtcp_accepted: int = 0
    dropped_oversized: int = 0
    dropped_truncated: int = 0
    dropped_bad_version: int = 0
    dropped_malformed: int = 0
    dropped_bad_tag: int = 0
    dropped_replay: int = 0
    dropped_unknown_source: int = 0
    dropped_plain_rtp: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def dropped(self) -> int:
        return sum(v for k, v in self.as_dict().items() if k.startswith("dropped_"))


class RelayErrorKind(enum.Enum):
    UNKNOWN_PARTICIPANT = "unknown_participant"
    DUPLICATE_PARTICIPANT = "duplicate_participant"
    UNKNOWN_CONFERENCE = "unknown_conference"


class RelayError(ValueError):
    def __init__(self, kind: RelayErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _Keyring:
    """The two sessions made from one generation of a participant's keys."""

    __slots__ = ("inbound", "keys", "outbound")

    def __init__(self, keys: ParticipantKeys) -> None:
        self.keys = keys
        self.inbound = SrtpSession(keys.send, Direction.INBOUND)
        self.outbound = SrtpSession(keys.receive, Direction.OUTBOUND)


class _Participant:
    __slots__ = (
        "address",
        "conference_id",
        "current",
        "on_rekeyed",
        "packets_in",
        "participant_id",
        "staged",
    )

    def __init__(
        self,
        participant_id: str,
        conference_id: str,
        keys: ParticipantKeys,
        on_rekeyed: Callable[[str], None],
    ) -> None:
        self.participant_id = participant_id
        self.conference_id = conference_id
        self.current = _Keyring(keys)
        self.staged: _Keyring | None = None
        self.address: Address | None = None
        self.packets_in = 0
        self.on_rekeyed = on_rekeyed

    def unprotect(self, data: bytes, rtcp: bool) -> bytes:
        try:
            return _open(self.current, data, rtcp)
        except SrtpError as exc:
            # A fresh session numbers its SRTCP from the start again, so the current session may
            # call the first RTCP under the staged keys a replay (it checks that before the tag).
            if self.staged is None or exc.kind not in (SrtpFailure.BAD_TAG, SrtpFailure.REPLAY):
                raise
            try:
                plain = _open(self.staged, data, rtcp)
            except SrtpError:
                raise exc from None
        self.current, self.staged = self.staged, None
        self.on_rekeyed(self.conference_id)
        return plain


class _Route(NamedTuple):
    participant: _Participant
    address: Address
    protect: Callable[[bytes], bytes]
    protect_rtcp: Callable[[bytes], bytes]


def _open(ring: _Keyring, data: bytes, rtcp: bool) -> bytes:
    return ring.inbound.unprotect_rtcp(data) if rtcp else ring.inbound.unprotect(data)


@dataclass(frozen=True)
class ParticipantInfo:
    participant_id: str
    conference_id: str
    address: Address | None
    profile: str
    rekey_pending: bool
    packets_in: int


def looks_plain(payload: bytes) -> bool:
    """True when a payload has too few distinct byte values to be SRTP ciphertext.

    n random bytes show about 256*(1-(255/256)^n) distinct values; media in the clear (tones,
    silence, text) shows far fewer. Below 24 bytes there is too little to tell."""
    sample = payload[:PLAIN_SAMPLE]
    n = len(sample)
    if n < 24:
        return False
    expected = 256 * (1 - (255 / 256) ** n)
    return len(set(sample)) < expected / 2


class RelayCore:
    def __init__(self) -> None:
        self.counters = RelayCounters()
        self._participants: dict[str, _Participant] = {}
        self._conferences: dict[str, dict[str, _Participant]] = {}
        self._by_address: dict[Address, _Participant] = {}
        self._by_ssrc: dict[int, _Participant] = {}
        # Per conference: (participant, address, protect, protect_rtcp) of everyone reachable,
        # rebuilt whenever an address, a key or the membership changes.
        self._routes: dict[str, list[_Route]] = {}

    # -- membership ------------------------------------------------------------------------------

    def add_participant(
        self, participant_id: str, conference_id: str, keys: ParticipantKeys
    ) -> None:
        if participant_id in self._participants:
            raise RelayError(
                RelayErrorKind.DUPLICATE_PARTICIPANT,
                f"participant {participant_id} is already here",
            )
        participant = _Participant(participant_id, conference_id, keys, self._invalidate)
        self._participants[participant_id] = participant
        self._conferences.setdefault(conference_id, {})[participant_id] = participant

    def remove_participant(self, participant_id: str) -> None:
        participant = self._get(participant_id)
        del self._participants[participant_id]
        members = self._conferences[participant.conference_id]
        del members[participant_id]
        if not members:
            del self._conferences[participant.conference_id]
        self._invalidate(participant.conference_id)
        if participant.address is not None:
            self._by_address.pop(participant.address, None)
        for ssrc in [s for s, p in self._by_ssrc.items() if p is participant]:
            del self._by_ssrc[ssrc]

    def rekey_participant(self, participant_id: str, keys: ParticipantKeys) -> None:
        """Stage the next keys; they take over with the first packet sent under them."""
        self._get(participant_id).staged = _Keyring(keys)

    def conference_members(self, conference_id: str) -> list[str]:
        if conference_id not in self._conferences:
            raise RelayError(
                RelayErrorKind.UNKNOWN_CONFERENCE, f"no participant of {conference_id} is here"
            )
        return list(self._conferences[conference_id])

    def participant(self, participant_id: str) -> ParticipantInfo:
        p = self._get(participant_id)
        return ParticipantInfo(
            p.participant_id,
            p.conference_id,
            p.address,
            p.current.keys.send.profile.value,
            p.staged is not None,
            p.packets_in,
        )

    def participants(self) -> list[ParticipantInfo]:
        return [self.participant(pid) for pid in self._participants]

    def _get(self, participant_id: str) -> _Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise RelayError(
                RelayErrorKind.UNKNOWN_PARTICIPANT, f"participant {participant_id} is not here"
            ) from None

    # -- media -----------------------------------------------------------------------------------

    def datagram_received(self, address: Address, data: bytes) -> list[Send]:
        counters = self.counters
        counters.received += 1
        size = len(data)
        if size > MAX_DATAGRAM:
            counters.dropped_oversized += 1
            return []
        if size < 2:
            counters.dropped_truncated += 1
            return []
        if data[0] >> 6 != 2:
            counters.dropped_bad_version += 1
            return []
        rtcp = 192 <= data[1] <= 223
        if rtcp:
            header = 8
            if size < SRTCP_MIN:
                counters.dropped_truncated += 1
                return []
        else:
            try:
                header = srtp_header_length(data)
            except RtpError as exc:
                self._count_fault(exc.kind)
                return []
            if size < header + MIN_TAG_LENGTH:
                counters.dropped_truncated += 1
                return []
        sender = self._by_address.get(address)
        if sender is None:
            return self._from_new_address(address, data, rtcp, header)
        try:
            plain = sender.unprotect(data, rtcp)
        except SrtpError as exc:
            self._count_failure(exc.kind, data, header)
            return []
        return self._forward(sender, plain, rtcp)

    def _from_new_address(
        self, address: Address, data: bytes, rtcp: bool, header: int
    ) -> list[Send]:
        """Find whose keys open this packet: participants not heard from yet, or whose SSRC it is."""
        ssrc = int.from_bytes(data[4:8] if rtcp else data[8:12], "big")
        candidates: list[_Participant] = [
            p for p in self._participants.values() if p.address is None
        ]
        known = self._by_ssrc.get(ssrc)
        if known is not None and known.address is not None:
            candidates.append(known)
        replayed = False
        for candidate in candidates:
            try:
                plain = candidate.unprotect(data, rtcp)
            except SrtpError as exc:
                replayed = replayed or exc.kind is SrtpFailure.REPLAY
                continue
            self._bind(candidate, address)
            if not rtcp:
                self._by_ssrc[ssrc] = candidate
            return self._forward(candidate, plain, rtcp)
        if replayed:
            self.counters.dropped_replay += 1
        elif looks_plain(data[header:]):
            self.counters.dropped_plain_rtp += 1
        else:
            self.counters.dropped_unknown_source += 1
        return []

    def _bind(self, participant: _Participant, address: Address) -> None:
        if participant.address is not None:
            self._by_address.pop(participant.address, None)
        previous = self._by_address.get(address)
        if previous is not None:
            previous.address = None
            self._invalidate(previous.conference_id)
        participant.address = address
        self._by_address[address] = participant
        self._invalidate(participant.conference_id)

    def _invalidate(self, conference_id: str) -> None:
        self._routes.pop(conference_id, None)

    def _routes_of(self, conference_id: str) -> list[_Route]:
        routes = [
            _Route(
                p,
                p.address,
                p.current.outbound.protect_unchecked,
                p.current.outbound.protect_rtcp_unchecked,
            )
            for p in self._conferences.get(conference_id, {}).values()
            if p.address is not None
        ]
        self._routes[conference_id] = routes
        return routes

    def _forward(self, sender: _Participant, plain: bytes, rtcp: bool) -> list[Send]:
        counters = self.counters
        if rtcp:
            try:
                parse_compound(plain)
            except RtpError:
                counters.dropped_malformed += 1
                return []
            counters.rtcp_accepted += 1
        counters.accepted += 1
        sender.packets_in += 1
        routes = self._routes.get(sender.conference_id)
        if routes is None:
            routes = self._routes_of(sender.conference_id)
        out: list[Send] = []
        # Lengths are bounded by MAX_DATAGRAM, so the unchecked libsrtp calls cannot overflow.
        for receiver, address, protect, protect_rtcp in routes:
            if receiver is sender:
                continue
            try:
                out.append(Send(address, protect_rtcp(plain) if rtcp else protect(plain)))
            except LibsrtpError:
                continue
        counters.forwarded += len(out)
        return out

    def _count_fault(self, kind: PacketFault) -> None:
        if kind is PacketFault.TRUNCATED:
            self.counters.dropped_truncated += 1
        elif kind is PacketFault.BAD_VERSION:
            self.counters.dropped_bad_version += 1
        else:
            self.counters.dropped_malformed += 1

    def _count_failure(self, kind: SrtpFailure, data: bytes, header: int) -> None:
        if kind is SrtpFailure.REPLAY:
            self.counters.dropped_replay += 1
        elif kind is SrtpFailure.BAD_TAG:
            if looks_plain(data[header:]):
                self.counters.dropped_plain_rtp += 1
            else:
                self.counters.dropped_bad_tag += 1
        elif kind is SrtpFailure.TOO_LONG:
            self.counters.dropped_oversized += 1
        else:
            self.counters.dropped_malformed += 1
