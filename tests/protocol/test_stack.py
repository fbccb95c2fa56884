"""The stack description: stack.json round trip, the region lookup and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.stack import (
    Endpoint,
    Gateway,
    Relay,
    Stack,
    StackError,
    read_stack,
    stack_file,
    write_stack,
)

LAUNCHED = {
    "home": "/tmp/stack-home",
    "schema_prefix": "t1_",
    "services": {
        "dm": {
            "us": {
                "url": "https://127.0.0.1:4001",
                "port": 4001,
                "ca_file": "/tmp/stack-home/dm/us/ca/ca.pem",
                "pid": 11,
                "module": "services.dm.main",
                "log": "/tmp/stack-home/logs/dm-us.log",
            }
        },
        "meeting": {
            "sa": {
                "url": "https://127.0.0.1:4002",
                "signaling_url": "wss://127.0.0.1:4002/v1/signaling",
                "ca_file": "/tmp/stack-home/meeting/sa/ca/ca.pem",
                "pid": 12,
            }
        },
    },
    "relays": {
        "sa": {"relay-1": {"pid": 13, "control_url": "https://127.0.0.1:5001", "media_port": 5002}}
    },
    "pstn": {"sa": {"pid": 14, "control_url": "https://127.0.0.1:5003", "log": "pstn.log"}},
}


def test_a_launched_stack_reads_as_typed_endpoints() -> None:
    stack = Stack.from_json(LAUNCHED)
    dm = stack.endpoint("dm", "us")
    assert dm == Endpoint(
        "dm",
        "us",
        "https://127.0.0.1:4001",
        Path("/tmp/stack-home/dm/us/ca/ca.pem"),
        pid=11,
        port=4001,
        module="services.dm.main",
        log="/tmp/stack-home/logs/dm-us.log",
    )
    assert stack.home == Path("/tmp/stack-home") and stack.schema_prefix == "t1_"
    assert stack.regions("dm") == ("us",) and stack.regions("pstn") == ()
    assert [ep.region for ep in stack.endpoints()] == ["us", "sa"]
    assert stack.endpoint("meeting", "sa").urls == {
        "url": "https://127.0.0.1:4002",
        "signaling_url": "wss://127.0.0.1:4002/v1/signaling",
    }
    assert stack.relays["sa"]["relay-1"] == Relay(
        "sa", "relay-1", 13, "https://127.0.0.1:5001", 5002
    )
    assert stack.pstn["sa"] == Gateway("sa", 14, "https://127.0.0.1:5003", "pstn.log")


def test_the_description_survives_a_round_trip_through_stack_json(tmp_path: Path) -> None:
    stack = Stack.from_json({**LAUNCHED, "home": str(tmp_path)})
    assert write_stack(stack) == stack_file(tmp_path)
    again = read_stack(tmp_path)
    assert again == stack
    written = json.loads(stack_file(tmp_path).read_text())
    assert written["services"]["dm"]["us"] == LAUNCHED["services"]["dm"]["us"]  # the same layout
    assert written["services"]["meeting"]["sa"]["signaling_url"].startswith("wss://")


def test_a_region_the_stack_does_not_run_is_named_in_the_error() -> None:
    stack = Stack.from_json(LAUNCHED)
    with pytest.raises(StackError, match=r"no dm region 'au' \(it has us\)"):
        stack.endpoint("dm", "au")
    with pytest.raises(StackError, match=r"runs no pstn service \(it runs dm, meeting\)"):
        stack.endpoint("pstn", "sa")


def test_a_restarted_region_replaces_its_entry() -> None:
    stack = Stack.from_json(LAUNCHED)
    old = stack.endpoint("dm", "us")
    stack.add(Endpoint("dm", "us", old.url, old.ca_file, pid=99, port=old.port))
    assert stack.endpoint("dm", "us").pid == 99 and stack.regions("dm") == ("us",)


def test_no_stack_or_a_broken_file_is_a_stack_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"no local stack at .* \(run `roomtrust up`\)"):
        read_stack(tmp_path)
    stack_file(tmp_path).write_text("{not json")
    with pytest.raises(StackError, match="not JSON"):
        read_stack(tmp_path)
    stack_file(tmp_path).write_text(json.dumps({"home": "x", "services": {"dm": {"us": {}}}}))
    with pytest.raises(StackError, match="not a stack description"):
        read_stack(tmp_path)
