"""Call quality: RFC 3550 receiver statistics, RTT from report blocks, and the G.107 E-model."""

from __future__ import annotations

import pytest

from media_core.quality import (
    R_DEFAULT,
    CallQuality,
    ReceiveStatistics,
    delay_impairment,
    effective_equipment_impairment,
    jitter_seconds,
    loss_fraction,
    mos_from_r,
    r_factor,
    round_trip_time,
)
from media_core.rtcp import ReportBlock, ntp_middle32, ntp_timestamp


def test_loss_counts_and_fraction_from_sequence_numbers() -> None:
    stats = ReceiveStatistics(ssrc=9, clock_rate=8000)
    for seq in [0, 1, 2, 4, 5, 6, 7, 9]:  # 3 and 8 lost
        stats.update(seq, seq * 160, seq * 0.02)
    block = stats.report_block()
    assert (stats.expected, stats.received, block.cumulative_lost) == (10, 8, 2)
    assert block.fraction_lost == (2 << 8) // 10
    assert loss_fraction(block) == 51 / 256
    assert stats.report_block().fraction_lost == 0  # nothing new since the last report


def test_sequence_wrap_extends_the_highest_number() -> None:
    stats = ReceiveStatistics(ssrc=1, clock_rate=8000)
    for i, seq in enumerate([65534, 65535, 0, 1]):
        stats.update(seq, i * 160, i * 0.02)
    assert stats.extended_highest == 65536 + 1 and stats.cumulative_lost == 0


def test_jitter_is_zero_for_steady_arrival_and_grows_with_variation() -> None:
    steady = ReceiveStatistics(ssrc=1, clock_rate=8000)
    shaky = ReceiveStatistics(ssrc=1, clock_rate=8000)
    for i in range(50):
        steady.update(i, i * 160, 1.0 + i * 0.02)
        shaky.update(i, i * 160, 1.0 + i * 0.02 + (0.01 if i % 2 else 0.0))
    assert steady.jitter_seconds == pytest.approx(0.0, abs=1e-9)
    # alternating 10 ms transit differences: the RFC 3550 estimate converges towards 10 ms
    assert 0.008 < shaky.jitter_seconds <= 0.010
    block = shaky.report_block()
    assert jitter_seconds(block, 8000) == pytest.approx(int(shaky.jitter_seconds * 8000) / 8000)


def test_rtt_from_lsr_and_dlsr() -> None:
    sent = ntp_middle32(ntp_timestamp(100.0))
    block = ReportBlock(1, 0, 0, 0, 0, lsr=sent, dlsr=int(0.25 * 65536))
    rtt = round_trip_time(block, ntp_middle32(ntp_timestamp(100.4)))
    assert rtt == pytest.approx(0.15, abs=1 / 65536 * 2)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0), 12345) is None


def test_e_model_reference_points() -> None:
    # G.107: with every default the rating is R = 93.2, which Annex B maps to MOS 4.41.
    assert r_factor(0, 0) == pytest.approx(R_DEFAULT)
    assert mos_from_r(R_DEFAULT) == pytest.approx(4.41, abs=0.005)
    assert mos_from_r(-5) == 1.0 and mos_from_r(120) == 4.5
    # Idd (G.107 eq. 7-28, mT = 100 ms) is zero up to 100 ms; worked by hand, X = 1 at 200 ms
    # gives 25 * (2^(1/6) - 3 * (1 + 3^-6)^(1/6) + 2) = 3.04, and X = 2 at 400 ms gives 24.07.
    assert delay_impairment(100) == 0.0
    assert delay_impairment(200) == pytest.approx(3.04, abs=0.01)
    assert delay_impairment(400) == pytest.approx(24.07, abs=0.01)
    # Ie,eff for G.711 (Bpl 25.1) at 1% random loss: 95 * 1 / 26.1
    assert effective_equipment_impairment(1.0) == pytest.approx(95 / 26.1)


def test_call_quality_falls_with_loss_and_delay() -> None:
    clean = CallQuality.from_figures(0.0, 5.0, 20.0)
    lossy = CallQuality.from_figures(0.05, 5.0, 20.0)
    slow = CallQuality.from_figures(0.0, 5.0, 800.0, jitter_buffer_ms=60)
    assert clean.mos > lossy.mos and clean.mos > slow.mos
    assert 4.3 < clean.mos <= 4.5
