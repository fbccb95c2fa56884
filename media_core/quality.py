"""Call quality: loss, jitter and round-trip time from RTCP, and a MOS from the ITU-T G.107 E-model.

`ReceiveStatistics` keeps a receiver's per-source figures as RFC 3550 appendix A does (extended
highest sequence, expected and lost packets, interarrival jitter) and writes the report block.
`round_trip_time` reads the RTT out of a report block (RFC 3550 section 6.4.1). `r_factor` and `mos`
are the E-model with every parameter at its G.107 default except one-way delay, codec impairment
(Ie) and packet-loss robustness (Bpl), the figures a call can measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from media_core.rtcp import ReportBlock

# G.107 default-parameter R (Ro - Is - Idte - Idle at the defaults, and A = 0).
R_DEFAULT = 93.2

# G.113 Appendix I figures for G.711 with packet-loss concealment.
G711_IE = 0.0
G711_BPL = 25.1


@dataclass
class ReceiveStatistics:
    """What a receiver knows about one source, updated per packet (times in seconds)."""

    ssrc: int
    clock_rate: int
    _base_seq: int | None = None
    _max_seq: int = 0
    _cycles: int = 0
    received: int = 0
    _jitter: float = 0.0
    _last_transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0

    def update(self, sequence_number: int, rtp_timestamp: int, arrival: float) -> None:
        if self._base_seq is None:
            self._base_seq = sequence_number
            self._max_seq = sequence_number
        else:
            delta = (sequence_number - self._max_seq) & 0xFFFF
            if 0 < delta < 0x8000:
                if sequence_number < self._max_seq:
                    self._cycles += 1 << 16
                self._max_seq = sequence_number
        self.received += 1
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._last_transit is not None:
            self._jitter += (abs(transit - self._last_transit) - self._jitter) / 16
        self._last_transit = transit

    @property
    def extended_highest(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self._base_seq is None:
            return 0
        return self.extended_highest - self._base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter_seconds(self) -> float:
        return self._jitter / self.clock_rate

    def report_block(self, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """The block for the next report; the fraction lost covers the span since the last call."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior, self._received_prior = self.expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = (
            0
            if expected_interval <= 0 or lost_interval <= 0
            else ((lost_interval << 8) // expected_interval)
        )
        lost = max(-(1 << 23), min(self.cumulative_lost, (1 << 23) - 1))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=lost,
            highest_sequence=self.extended_highest & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


def round_trip_time(block: ReportBlock, arrival_ntp_middle32: int) -> float | None:
    """RTT in seconds from a report block about our stream, received at the given NTP time.

    None when the block refers to no sender report yet (LSR zero)."""
    if block.lsr == 0:
        return None
    rtt = (arrival_ntp_middle32 - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:  # the clocks disagree: a negative figure is no measurement
        return 0.0
    return rtt / 65536.0


def loss_fraction(block: ReportBlock) -> float:
    return block.fraction_lost / 256.0


def jitter_seconds(block: ReportBlock, clock_rate: int) -> float:
    return block.jitter / clock_rate


def delay_impairment(one_way_delay_ms: float) -> float:
    """Idd of G.107 (section 7.4) for an absolute one-way delay Ta, in ms."""
    if one_way_delay_ms <= 100:
        return 0.0
    x = math.log10(one_way_delay_ms / 100) / math.log10(2)
    sixth_root = 1.0 / 6.0
    return 25.0 * (math.pow(1 + x**6, sixth_root) - 3 * math.pow(1 + (x / 3) ** 6, sixth_root) + 2)


def effective_equipment_impairment(
    loss_percent: float, ie: float = G711_IE, bpl: float = G711_BPL, burst_ratio: float = 1.0
) -> float:
    """Ie,eff of G.107: the codec impairment raised by random (or bursty) packet loss."""
    ppl = max(0.0, min(100.0, loss_percent))
    return ie + (95 - ie) * ppl / (ppl / burst_ratio + bpl)


def r_factor(
    one_way_delay_ms: float,
    loss_percent: float,
    ie: float = G711_IE,
    bpl: float = G711_BPL,
    burst_ratio: float = 1.0,
) -> float:
    return (
        R_DEFAULT
        - delay_impairment(one_way_delay_ms)
        - effective_equipment_impairment(loss_percent, ie, bpl, burst_ratio)
    )


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the estimated mean opinion score (conversational quality) for an R."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


@dataclass(frozen=True, slots=True)
class CallQuality:
    loss: float  # fraction 0..1
    jitter_ms: float
    rtt_ms: float | None
    mos: float

    @classmethod
    def from_figures(
        cls, loss: float, jitter_ms: float, rtt_ms: float | None, jitter_buffer_ms: float = 0.0
    ) -> CallQuality:
        """One-way delay is taken as half the RTT plus the playout (jitter buffer) delay."""
        one_way = (rtt_ms or 0.0) / 2 + jitter_buffer_ms
        return cls(loss, jitter_ms, rtt_ms, mos_from_r(r_factor(one_way, loss * 100)))
