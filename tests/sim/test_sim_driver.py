"""The SimPy driver carries out every action of the real DeviceAgent in simulated time: requests
through the region's server pool, channel messages both ways, a download's transfer, an install's
flash write and a reboot."""

from __future__ import annotations

import base64
from typing import Any

import simpy

from devices_virtual.agent import AgentConfig, DeviceAgent, DeviceIdentity, DownloadFile, Phase
from devices_virtual.agent.firmware import virtual_image
from devices_virtual.models import get_model
from services.common import firmware
from sim.driver import Episode, Network, dm_answer
from sim.service import ServerPool

MODEL = "MeetingBar A30"
NEW = "266.420.0.0"
RELEASE_KEY = firmware.generate_release_key()
SERVICE_S = 0.01


def episode(
    env: simpy.Environment,
    done: Any,
    files: Any = None,
    **config: Any,
) -> Episode:
    identity = DeviceIdentity("02:00:00:00:00:07", "SN7", get_model(MODEL), "Room 7", "csr")
    agent = DeviceAgent(identity, AgentConfig(dm_url="https://dm.us.sim", **config))
    pool = ServerPool(env, "us", 1)
    extra = {"files": files} if files is not None else {}
    return Episode(
        env, agent, pool, lambda _p: SERVICE_S, Network(0.1), dm_answer(True), done, **extra
    )


def run_until_online(env: simpy.Environment, ep: Episode) -> None:
    env.process(ep.run())
    env.run(until=5)
    assert ep.agent.phase is Phase.ONLINE and ep.channel_open


def test_a_pushed_profile_reaches_the_agent_and_its_acknowledgement_reaches_the_region() -> None:
    env = simpy.Environment()
    ep = episode(env, lambda a: a.configuration_version == "rooms@1", boot_seconds=0)
    run_until_online(env, ep)
    payload = {"version": "rooms@1", "values": {"ntp.server": "ntp.hq.example"}}
    sent_at = env.now
    assert ep.command({"type": "command", "command_id": 3, "kind": "config", "payload": payload})
    env.run(until=sent_at + 1)
    assert ep.closed and ep.agent.configuration_version == "rooms@1"
    (ack,) = [m for m in ep.sent if m["type"] == "ack"]
    assert ack["result"] == {"applied": True, "version": "rooms@1"}
    assert ep.unacked == {}


def test_a_diagnostics_command_is_uploaded_through_the_regions_pool() -> None:
    env = simpy.Environment()
    ep = episode(env, lambda _a: False, boot_seconds=0)
    run_until_online(env, ep)
    served = ep.pool.served
    assert ep.command({"type": "command", "command_id": 4, "kind": "diagnostics", "payload": {}})
    env.run(until=env.now + 1)
    assert ep.pool.served == served + 1  # the upload took a turn in the region's pool
    assert not [m for m in ep.sent if m["type"] == "ack"]  # a stored bundle needs none
    assert any("diagnostics 4 uploaded" in line for line in ep.agent.log.lines())
    assert ep.unacked == {}


def test_a_firmware_update_downloads_writes_flash_and_reboots_in_simulated_time() -> None:
    key = firmware.new_download_key()
    image = virtual_image(MODEL, NEW, size=2_000_000)
    signed = firmware.sign_image(RELEASE_KEY, model=MODEL, version=NEW, image=image)
    data = firmware.encrypt_download(firmware.pack(signed), key, context=b"dl1")
    asked: list[float] = []

    def files(_agent: DeviceAgent, download: DownloadFile) -> tuple[int, bytes]:
        asked.append(env.now)
        return 200, data

    env = simpy.Environment()
    pem = firmware.public_key_pem(RELEASE_KEY).decode()
    ep = episode(env, lambda _a: False, files, boot_seconds=30, release_key_pem=pem)
    env.process(ep.run())
    env.run(until=40)
    assert ep.agent.phase is Phase.ONLINE and ep.channel_open
    payload = {
        "op": "install",
        "download": "/v1/device/firmware/dl1",
        "key": base64.b64encode(key).decode(),
    }
    started = env.now
    ep.command({"type": "command", "command_id": 9, "kind": "firmware", "payload": payload})
    env.run(until=started + 10)
    assert ep.reboots == 1 and ep.agent.phase is Phase.BOOTING  # boot takes 30 s
    env.run(until=started + 60)
    assert ep.agent.firmware_version == NEW and ep.agent.phase is Phase.ONLINE
    # the region sent the command again when the channel reopened after the boot, and the
    # agent answered with its result
    (ack,) = [m for m in ep.sent if m["type"] == "ack"]
    assert ack["command_id"] == 9 and ack["result"]["ok"] is True
    assert ep.unacked == {}
    # the download cost its transfer, the install its flash write, the boot its boot time
    transfer = len(data) / ep.network.dm_bytes_per_s
    flash = len(image) / ep.flash_bytes_per_s
    installed = next(
        float(line.split()[0]) for line in ep.agent.log.lines() if " installed:" in line
    )
    assert installed - asked[0] >= transfer + flash + SERVICE_S
