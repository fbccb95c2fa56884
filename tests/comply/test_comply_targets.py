"""Targets: what `--target` accepts and what each kind hands the steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.stack import Stack
from roomtrust.comply.targets import LocalTarget, TargetError, parse_target


def test_a_target_file_describes_a_deployed_region(tmp_path: Path) -> None:
    spec = {
        "kind": "url",
        "name": "eu-production",
        "endpoints": [
            {"service": "dm", "region": "eu", "url": "https://dm.eu.example", "ca_file": "ca.pem"},
            {"service": "meeting", "region": "eu", "url": "wss://sig.eu.example:8443/ws"},
        ],
        "credentials": {"admin_email": "qa@example.com"},
    }
    (tmp_path / "eu.json").write_text(json.dumps(spec))
    target = parse_target(str(tmp_path / "eu.json"))
    assert (target.kind, target.name, target.server_control) == ("url", "eu-production", False)
    dm, meeting = target.endpoints()
    assert (dm.host, dm.port, dm.ca_file) == ("dm.eu.example", 443, tmp_path / "ca.pem")
    assert (meeting.service, meeting.port) == ("meeting", 8443)
    assert [e.service for e in target.endpoints("meeting")] == ["meeting"]
    assert target.credentials() == {"admin_email": "qa@example.com"}
    with pytest.raises(TargetError, match="no local stack"):
        target.stack()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "url", "endpoints": []}, "'endpoints' must list"),
        (
            {"kind": "url", "endpoints": [{"service": "dm", "region": "eu", "url": "http://x"}]},
            "not https",
        ),
        ({"kind": "ftp"}, "field 'kind'"),
    ],
)
def test_a_bad_target_file_is_refused_naming_the_field(
    tmp_path: Path, spec: dict[str, object], message: str
) -> None:
    (tmp_path / "t.json").write_text(json.dumps(spec))
    with pytest.raises(TargetError, match=message):
        parse_target(str(tmp_path / "t.json"))


def test_an_unknown_target_word_is_refused() -> None:
    with pytest.raises(TargetError, match="not local, graph, sim, nor a target file"):
        parse_target("staging")


def test_the_local_target_publishes_every_tls_url_of_each_region(tmp_path: Path) -> None:
    stack = {
        "home": str(tmp_path),
        "services": {
            "meeting": {
                "eu": {
                    "url": "https://127.0.0.1:4001",
                    "signaling_url": "wss://127.0.0.1:4002/ws",
                    "media_url": "udp://127.0.0.1:4003",
                    "ca_file": "ca.pem",
                    "pid": 1,
                }
            }
        },
    }
    ports = sorted(e.port for e in LocalTarget(tmp_path, Stack.from_json(stack)).endpoints())
    assert ports == [4001, 4002]


def test_graph_snapshots_are_read_from_a_folder(tmp_path: Path) -> None:
    graph = {"stack": "prod-dm-eu", "resources": [{"type": "azure-native:x", "inputs": {}}]}
    (tmp_path / "prod-dm-eu.json").write_text(json.dumps(graph))
    snapshots = parse_target(f"graph:{tmp_path}").graph_snapshots()
    assert [s["stack"] for s in snapshots] == ["prod-dm-eu"]
    assert snapshots[0]["source"].endswith("prod-dm-eu.json")
