"""Bulk configuration and remote diagnosis over the device command channel (DM-05, DM-08, DM-13,
MT-12), against a live region process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from scapy.layers.inet import TCP

from protocol.stack import Stack
from roomtrust.comply.capture import WireCapture, can_capture
from roomtrust.harness.stores import database_url
from services.dm.client import DeviceCredential, DmAdmin


def ws_url(url: str) -> str:
    return url.replace("https://", "wss://") + "/v1/device/commands"


async def receive_commands(
    device: DeviceCredential, url: str, ca: Any, count: int, ack: bool = True
) -> list[dict[str, Any]]:
    """Connect as the device (outbound, mTLS), take `count` commands and acknowledge them."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(ws_url(url), ssl=device.ssl_context(ca)) as ws:
        while len(received) < count:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            received.append(message)
            if ack and message["kind"] == "config":
                await ws.send(
                    json.dumps(
                        {
                            "type": "ack",
                            "command_id": message["command_id"],
                            "result": {"applied": True},
                        }
                    )
                )
        await asyncio.sleep(0.2)  # let the last acknowledgement land before closing
    return received


def deploy_enrolled(
    admin: DmAdmin,
    make_device: Callable[..., DeviceCredential],
    site: str,
    url: str,
    ca: Any,
    model: str = "MeetingBoard 65",
) -> DeviceCredential:
    device = make_device(model)
    admin.deploy(device.mac, device.serial_number, model, site)
    assert device.enroll(url, ca).status_code == 201
    return device


def test_site_push_reaches_that_site_only_and_versions_are_acknowledged(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    site_a = dm_admin.site_id  # type: ignore[attr-defined]
    site_b = dm_admin.create_site("Branch", "America/New_York")
    here = [deploy_enrolled(dm_admin, make_device, site_a, url, ca) for _ in range(3)]
    elsewhere = deploy_enrolled(dm_admin, make_device, site_b, url, ca)
    profile = dm_admin.http.post(
        "/v1/config/profiles",
        json={
            "name": "quiet",
            "values": {"audio.volume": 30, "display.brightness": 70},
            "target": {"site_id": site_a},
        },
    ).json()
    push = dm_admin.http.post(f"/v1/config/profiles/{profile['profile_id']}/push").json()
    assert sorted(push["device_ids"]) == sorted(d.device_id for d in here)
    before = dm_admin.push_status(profile["profile_id"])
    assert (before["devices"], before["acknowledged"], before["applied"]) == (3, 0, 0)

    async def all_devices() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(receive_commands(d, url, ca, 1) for d in here))

    for messages in asyncio.run(all_devices()):
        assert messages[0]["payload"] == {
            "version": "quiet@1",
            "values": {"audio.volume": 30, "display.brightness": 70},
        }
    listed = {d["device_id"]: d for d in dm_admin.devices()}
    assert dm_admin.http.get("/v1/config/drift").json() == []
    # every device of the site acknowledged exactly the pushed version; the other one has none
    assert [listed[d.device_id]["configuration_version"] for d in here] == ["quiet@1"] * 3
    assert listed[elsewhere.device_id]["configuration_version"] is None
    # the push's status counts the devices' own acknowledgements
    status = dm_admin.push_status(profile["profile_id"])
    assert status["version"] == "quiet@1" and status["devices"] == 3
    assert (status["acknowledged"], status["applied"], status["refused"]) == (3, 3, 0)
    missing = dm_admin.http.get("/v1/config/profiles/999999/status")
    assert missing.status_code == 404 and missing.json()["field"] == "profile_id"
    pushes = dm_admin.oplog(50, "config.push")
    assert [e["action"] for e in pushes] == ["config.push"]

    async def nothing_for_elsewhere() -> None:
        async with websockets.connect(ws_url(url), ssl=elsewhere.ssl_context(ca)) as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), timeout=1.0)

    asyncio.run(nothing_for_elsewhere())


def test_offline_device_gets_pending_configuration_when_it_reconnects(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    device = deploy_enrolled(
        dm_admin,
        make_device,
        dm_admin.site_id,
        url,
        ca,  # type: ignore[attr-defined]
        model="MeetingBar A10",
    )
    profile = dm_admin.http.post(
        "/v1/config/profiles",
        json={
            "name": "bars",
            "values": {"audio.volume": 55, "display.brightness": 10},
            "target": {"model": "MeetingBar A10"},
        },
    ).json()
    push = dm_admin.http.post(f"/v1/config/profiles/{profile['profile_id']}/push").json()
    assert device.device_id in push["device_ids"]
    drift = dm_admin.http.get("/v1/config/drift").json()
    assert any(row["device_id"] == device.device_id for row in drift)
    messages = asyncio.run(receive_commands(device, url, ca, 1))
    # a MeetingBar has no display: the display key is not sent to it
    assert messages[0]["payload"]["values"] == {"audio.volume": 55}
    drift = dm_admin.http.get("/v1/config/drift").json()
    assert not any(row["device_id"] == device.device_id for row in drift)


@pytest.mark.parametrize("key", ["meeting.subject", "user.contacts", "chat.history"])
def test_configuration_keys_that_carry_end_user_data_are_refused(
    dm_admin: DmAdmin, key: str
) -> None:
    response = dm_admin.http.post(
        "/v1/config/profiles",
        json={"name": "bad", "values": {key: "x"}, "target": {"tag": "all"}},
    )
    assert response.status_code == 422
    assert response.json()["field"] == f"values.{key}"
    assert "DM-08" in response.json()["reason"]


def test_diagnostics_bundle_is_for_its_enterprise_only(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    device = deploy_enrolled(dm_admin, make_device, dm_admin.site_id, url, ca)  # type: ignore[attr-defined]
    request = dm_admin.http.post(f"/v1/devices/{device.device_id}/diagnostics").json()
    messages = asyncio.run(receive_commands(device, url, ca, 1, ack=False))
    assert messages[0]["kind"] == "diagnostics"
    bundle = {
        "command_id": request["command_id"],
        "device_id": device.device_id,
        "mac": device.mac,
        "ip_address": "10.0.0.7",
        "logs": {"system.log": "boot ok"},
    }
    with device.client(url, ca) as http:
        refused = http.post("/v1/device/diagnostics", json={**bundle, "screenshot": "..."})
        assert refused.status_code == 422 and refused.json()["field"] == "screenshot"
        stored = http.post("/v1/device/diagnostics", json=bundle)
    assert stored.status_code == 201, stored.text
    bundle_id = stored.json()["bundle_id"]
    fetched = dm_admin.http.get(f"/v1/diagnostics/{bundle_id}").json()
    assert fetched["logs"] == {"system.log": "boot ok"}
    with DmAdmin(url, ca) as other:
        other.register("Other Corp", "other-diag@example.com", "correct horse battery")
        other.login("other-diag@example.com", "correct horse battery")
        assert other.http.get(f"/v1/diagnostics/{bundle_id}").status_code == 404


def test_revoked_device_loses_its_command_channel(
    live_stack: Stack, dm_admin: DmAdmin, enrolled_device: DeviceCredential
) -> None:
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file

    async def scenario() -> None:
        async with websockets.connect(ws_url(url), ssl=enrolled_device.ssl_context(ca)) as ws:
            assert enrolled_device.device_id is not None
            await asyncio.to_thread(dm_admin.undeploy, enrolled_device.device_id)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), timeout=5)
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(ws_url(url), ssl=enrolled_device.ssl_context(ca)):
                pass

    asyncio.run(scenario())


def dm_process_outbound(pid: int, service_port: int, allowed_ports: set[int]) -> list[str]:
    """TCP connections the DM process holds that it opened itself: any socket whose local port is
    not the service port and whose remote port is not an allowed one (the database)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                local_port, remote_port = (
                    int(local.split(":")[1], 16),
                    int(remote.split(":")[1], 16),
                )
                if inode not in inodes or state == "0A":  # 0A: listening
                    continue
                if local_port != service_port and remote_port not in allowed_ports:
                    found.append(f"{local} -> {remote} (state {state})")
    return found


@pytest.mark.skipif(not can_capture(), reason="capturing on lo needs root")
def test_a_device_offline_during_the_push_gets_it_on_reconnect_and_nothing_dials_in(
    live_stack: Stack, dm_admin: DmAdmin, make_device: Callable[..., DeviceCredential]
) -> None:
    """MT-12, DM-13: the push waits for the device's own outbound connection; the wire shows
    only connections opened towards the service, and the service holds none it opened."""
    endpoint = live_stack.endpoint("dm", "us")
    url, ca = endpoint.url, endpoint.ca_file
    port = int(urlsplit(url).port or 443)
    pid = endpoint.pid
    database = {5432} if database_url() else set()
    tag = f"offline-{secrets.token_hex(3)}"
    device = make_device("MeetingBar A20")
    dm_admin.deploy(device.mac, device.serial_number, device.model, dm_admin.site_id, tags=[tag])  # type: ignore[attr-defined]
    assert device.enroll(url, ca).status_code == 201

    async def online_then_gone() -> None:
        async with websockets.connect(ws_url(url), ssl=device.ssl_context(ca)):
            await asyncio.sleep(0.3)

    asyncio.run(online_then_gone())  # it was online, and now it is not
    audits: list[list[str]] = []
    with WireCapture(ports={port}) as capture:
        profile = dm_admin.create_profile(f"night-{tag}", {"audio.volume": 20}, {"tag": tag})
        pushed = dm_admin.push_profile(profile["profile_id"])
        assert pushed["device_ids"] == [device.device_id]
        assert pushed["delivered_now"] == 0  # offline: nothing can reach it
        audits.append(dm_process_outbound(pid, port, database))
        time.sleep(1.0)  # the service holds the command; it has no way to the device
        drift = dm_admin.http.get("/v1/config/drift").json()
        assert [r["wanted"] for r in drift if r["device_id"] == device.device_id] == [
            f"night-{tag}@1"
        ]
        audits.append(dm_process_outbound(pid, port, database))
        reconnected_at = time.time()
        messages = asyncio.run(receive_commands(device, url, ca, 1))
        audits.append(dm_process_outbound(pid, port, database))
    assert [m["payload"]["version"] for m in messages] == [f"night-{tag}@1"]
    listed = {d["device_id"]: d for d in dm_admin.devices()}
    assert listed[device.device_id]["configuration_version"] == f"night-{tag}@1"
    assert not any(
        r["device_id"] == device.device_id for r in dm_admin.http.get("/v1/config/drift").json()
    )
    # the wire: every TCP connection that touched the service was opened towards it
    opened = capture.connections()
    assert opened, "the capture saw no connection: it proves nothing"
    assert all(flow.dport == port for flow in opened), [str(f) for f in opened]
    syns = [
        p
        for p in capture.packets
        if TCP in p and p[TCP].flags.S and not p[TCP].flags.A and p.time >= reconnected_at
    ]
    assert syns and all(p[TCP].dport == port for p in syns)  # the device dialled out again
    assert audits == [[], [], []]
