"""Erlang B and C against published table values and exact small cases."""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import pytest

from sim.erlang import erlang_b, erlang_b_capacity, erlang_c, erlang_c_mean_wait

# Erlang B tables (e.g. the ITU-T / standard traffic tables): offered erlangs that give exactly
# 1% and 2% blocking for N circuits, printed to three decimals.
ONE_PERCENT = {1: 0.0101, 2: 0.153, 5: 1.361, 10: 4.461, 20: 12.031, 50: 37.901, 100: 84.064}
TWO_PERCENT = {5: 1.657, 10: 5.084, 20: 13.182, 50: 40.255, 100: 87.972}


@pytest.mark.parametrize(("table", "target"), [(ONE_PERCENT, 0.01), (TWO_PERCENT, 0.02)])
def test_erlang_b_matches_the_published_tables(table: dict[int, float], target: float) -> None:
    for servers, load in table.items():
        assert erlang_b(servers, load) == pytest.approx(target, rel=5e-3), servers
        assert erlang_b_capacity(load * 0.99, target) == servers


def _b_direct(c: int, a: Fraction) -> Fraction:
    terms = [a**k / factorial(k) for k in range(c + 1)]
    return terms[-1] / sum(terms)


@pytest.mark.parametrize(("c", "a"), [(1, "1/2"), (3, "2"), (7, "13/2"), (30, "24")])
def test_recursion_equals_the_factorial_formula(c: int, a: str) -> None:
    exact = _b_direct(c, Fraction(a))
    assert erlang_b(c, float(Fraction(a))) == pytest.approx(float(exact), rel=1e-12)


def test_erlang_c_small_cases() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    # M/M/1 mean wait rho / (mu - lambda); M/M/2 with a = 1: (1/3) / (2 - 1)
    assert erlang_c_mean_wait(1, 0.8, 1.0) == pytest.approx(4.0)
    assert erlang_c_mean_wait(2, 2.0, 2.0) == pytest.approx((1 / 3) / 2)


def test_large_systems_stay_finite() -> None:
    b = erlang_b(5000, 4800.0)
    c = erlang_c(5000, 4800.0)
    assert 0 < b < c < 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="servers"):
        erlang_b(0, 1.0)
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(5, 5.0)
    with pytest.raises(ValueError, match="load"):
        erlang_b(5, -1.0)
