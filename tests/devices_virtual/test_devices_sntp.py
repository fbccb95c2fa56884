"""SNTP packets of the driver and its stand-in server."""

from __future__ import annotations

import pytest

from devices_virtual.driver import sntp


def test_reply_carries_the_server_time_and_echoes_the_client_stamp() -> None:
    query = sntp.request(1_700_000_000.25)
    answer = sntp.reply(query, 1_800_000_000.5)
    assert answer is not None and len(answer) == 48
    assert sntp.server_time(answer) == pytest.approx(1_800_000_000.5, abs=1e-6)
    assert answer[24:32] == query[40:48]  # originate = client's transmit


def test_server_ignores_what_is_not_a_client_query() -> None:
    assert sntp.reply(b"hello", 1.0) is None
    server_packet = sntp.reply(sntp.request(1.0), 2.0)
    assert server_packet is not None and sntp.reply(server_packet, 3.0) is None


def test_client_refuses_a_non_server_packet() -> None:
    with pytest.raises(ValueError, match="48 bytes"):
        sntp.server_time(b"\0" * 10)
    with pytest.raises(ValueError, match="not an SNTP server reply"):
        sntp.server_time(sntp.request(1.0))
