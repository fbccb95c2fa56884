"""The agent's bounded log: lines at or above its level, the newest kept."""

from __future__ import annotations

import pytest

from devices_virtual.agent.log import AgentLog, line_level


def test_lines_below_the_level_are_not_recorded_nor_formatted() -> None:
    log = AgentLog("info")

    class Loud:
        def __str__(self) -> str:
            raise AssertionError("a filtered line was formatted")

    log.add(1.0, "debug", "hidden %s", Loud())
    log.add(2.5, "info", "clock set from %s", "ntp.hq.example")
    log.add(3.0, "error", "camera fault")
    assert log.lines() == ["2.500 INFO clock set from ntp.hq.example", "3.000 ERROR camera fault"]
    assert [line_level(line) for line in log.lines()] == ["info", "error"]


def test_a_raised_level_also_hides_what_was_kept_below_it() -> None:
    log = AgentLog("debug")
    log.add(1.0, "debug", "time query")
    log.add(2.0, "warning", "no time")
    log.set_level("warning")
    assert log.lines() == ["2.000 WARNING no time"]
    assert log.wants("error") and not log.wants("info")


def test_the_ring_keeps_the_newest_lines() -> None:
    log = AgentLog("info", capacity=3)
    for second in range(10):
        log.add(float(second), "info", "line %d", second)
    assert [line.split()[-1] for line in log.lines()] == ["7", "8", "9"]
    assert len(log) == 3
    with pytest.raises(ValueError):
        AgentLog(capacity=0)
