"""Replicas that agree (issue 16): real DM processes (`roomtrust serve dm --region us`) of one region
on one PostgreSQL database, sharing the region's CA and release key (mounted secret files), with
real virtual devices (the asyncio driver) wherever a test checks delivery.

- A config push made through replica A reaches the agents whose channels replica B holds within a
  second (LISTEN/NOTIFY on commit).
- An un-deploy made through A closes the device's channel on B within a second.
- SIGKILL of the leader moves the lease to another replica within a few seconds, and the rollout's
  ticks go on there: its second wave starts and the rollout completes.
- A telemetry retry with the same report id, on another replica, stores one row; without an id
  (an old client) each post is a row (the negative control).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from devices_virtual.agent.firmware import virtual_image
from devices_virtual.models import get_model
from protocol.fields import REPORT_ID
from protocol.stack import Endpoint, Stack
from roomtrust.container_host import fresh_database, postgres_missing, write_region_secrets
from roomtrust.harness.fleets import (
    devices,
    fleet_admin,
    fleet_scenario,
    in_thread,
    start_fleet,
    wait_for_devices,
    wait_until,
)
from services.common.db import make_engine
from services.dm.client import DeviceCredential, DmAdmin

REGION = "us"
SCHEMA = f"dm_{REGION}"
MODEL = "DeskVision A24"
NEW_FIRMWARE = "291.411.0.0"
START_TIMEOUT = 60.0

pytestmark = [
    pytest.mark.database,
    pytest.mark.postgres,
    pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing())),
]


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen[str]

    def health(self) -> dict[str, Any]:
        with httpx.Client(verify=False, timeout=5) as http:  # only the probe: no TLS trust needed
            answer: dict[str, Any] = http.get(f"{self.url}/healthz").json()
            return answer


@dataclass
class Region:
    database_url: str
    ca_file: Path
    replicas: list[Replica]
    home: Path

    def stack(self, replica: Replica) -> Stack:
        """A stack description that sends the fleet's devices to `replica`."""
        stack = Stack(self.home)
        stack.add(Endpoint("dm", REGION, replica.url, self.ca_file, pid=replica.process.pid))
        return stack

    def engine(self) -> sa.Engine:
        return make_engine(self.database_url, SCHEMA)


@contextmanager
def replica_process(name: str, home: Path, env: dict[str, str]) -> Iterator[Replica]:
    ready = home / "dm" / REGION / "ready.json"
    home.mkdir(parents=True)
    log = (home / "replica.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "roomtrust", "serve", "dm", "--region", REGION],
        env={"PATH": str(Path(sys.executable).parent), **env, "ROOMTRUST_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():
            if process.poll() is not None:
                output = (home / "replica.log").read_text()
                pytest.fail(f"replica {name} exited ({process.returncode}): {output[-1500:]}")
            assert time.monotonic() < deadline, f"replica {name} did not start"
            time.sleep(0.1)
        port = json.loads(ready.read_text())["port"]
        yield Replica(name, f"https://127.0.0.1:{port}", process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextmanager
def replicated_region(tmp_path: Path, count: int) -> Iterator[Region]:
    keys = write_region_secrets(tmp_path / "secrets", f"dm-{REGION}")
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database())
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        env = {
            "ROOMTRUST_REGION": REGION,
            "ROOMTRUST_PORT": "0",
            "ROOMTRUST_DATABASE_URL": url,
            "ROOMTRUST_CA_CERT_FILE": str(keys.files["region-ca-cert"]),
            "ROOMTRUST_CA_KEY_FILE": str(keys.files["region-ca-key"]),
            "ROOMTRUST_RELEASE_KEY_FILE": str(keys.files["release-key"]),
            "ROOMTRUST_BLOB_DIRECTORY": str(tmp_path / "shared-volume"),
        }
        replicas = [  # one after the other: the first migrates the shared database
            stack.enter_context(replica_process(name, tmp_path / name, env))
            for name in "abc"[:count]
        ]
        yield Region(url, keys.files["region-ca-cert"], replicas, tmp_path)


def leaders(region: Region) -> list[Replica]:
    return [r for r in region.replicas if r.process.poll() is None and r.health()["leader"]]


def wait_for_one_leader(region: Region, timeout: float) -> Replica:
    deadline = time.monotonic() + timeout
    while True:
        found = leaders(region)
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, f"no single leader: {[r.name for r in found]}"
        time.sleep(0.1)


def test_a_push_through_one_replica_reaches_agents_on_another_and_an_undeploy_closes_there(
    tmp_path: Path,
) -> None:
    with replicated_region(tmp_path, 2) as region:
        a, b = region.replicas

        async def scenario() -> dict[str, Any]:
            run = await start_fleet(
                region.stack(b), tmp_path / "fleet", fleet_scenario("replicas", {MODEL: 4})
            )
            admin_b = fleet_admin(run)
            admin_a = DmAdmin(a.url, region.ca_file)
            admin_a.http.headers["authorization"] = admin_b.http.headers["authorization"]
            agents = devices(run)
            seen: dict[str, Any] = {}
            try:
                assert b.health()["connected"] == len(agents) and a.health()["connected"] == 0
                profile = await in_thread(
                    admin_a.create_profile, "rooms", {"dm.telemetry_s": 120}, {"model": MODEL}
                )
                version = f"rooms@{profile['version']}"
                started = time.monotonic()
                pushed = await in_thread(admin_a.push_profile, profile["profile_id"])
                await wait_for_devices(
                    lambda: all(d.agent.configuration_version == version for d in agents),
                    10,
                    "every agent to apply the profile pushed through the other replica",
                    interval=0.01,
                )
                seen["push_s"] = time.monotonic() - started
                seen["pushed"] = pushed

                gone = agents[0]
                started = time.monotonic()
                await in_thread(admin_a.undeploy, str(gone.agent.device_id))
                await wait_for_devices(
                    lambda: not gone.agent.channel_open,
                    10,
                    "the un-deployed device's channel on the other replica to close",
                    interval=0.01,
                )
                seen["undeploy_s"] = time.monotonic() - started
                seen["others_open"] = all(d.agent.channel_open for d in agents[1:])
            finally:
                await run.close()
                admin_a.close()
                admin_b.close()
            return seen

        seen = asyncio.run(scenario())
    # replica A held no channel: every device was reached through B, on A's commit
    assert seen["pushed"]["delivered_now"] == 0 and len(seen["pushed"]["device_ids"]) == 4
    assert seen["push_s"] < 1.0, seen
    assert seen["undeploy_s"] < 1.0, seen
    assert seen["others_open"]


def test_sigkill_of_the_leader_moves_the_lease_and_the_rollout_ticks_on(tmp_path: Path) -> None:
    with replicated_region(tmp_path, 3) as region:
        leader = wait_for_one_leader(region, 10)
        others = [r for r in region.replicas if r is not leader]
        devices_on, admin_on = others  # the devices stay on a replica that lives

        async def scenario() -> dict[str, Any]:
            run = await start_fleet(
                region.stack(devices_on), tmp_path / "fleet", fleet_scenario("lease", {MODEL: 2})
            )
            admin_b = fleet_admin(run)
            admin = DmAdmin(admin_on.url, region.ca_file)
            admin.http.headers["authorization"] = admin_b.http.headers["authorization"]
            seen: dict[str, Any] = {}
            try:
                image = await in_thread(
                    admin.upload_image, MODEL, NEW_FIRMWARE, virtual_image(MODEL, NEW_FIRMWARE)
                )
                # wave 2 starts only on a tick, once wave 1's alert window (3 s) has passed
                rollout = await in_thread(
                    admin.create_rollout,
                    image["image_id"],
                    waves=[{"count": 1}, {"count": 1}],
                    alert_window_minutes=0.05,
                )
                rollout_id = rollout["rollout_id"]
                await in_thread(admin.control_rollout, rollout_id, "start")
                killed, seen["killed_at"] = time.monotonic(), dt.datetime.now(dt.UTC)
                os.kill(leader.process.pid, signal.SIGKILL)
                leader.process.wait()
                new_leader = await in_thread(wait_for_one_leader, region, 10)
                seen["lease_s"] = time.monotonic() - killed
                seen["new_leader"] = new_leader.name

                def completed() -> dict[str, Any] | None:
                    status = admin.rollout(rollout_id)
                    return status if status["state"] == "completed" else None

                seen["status"] = await wait_until(completed, 90, "the rollout to complete")
                seen["log"] = await in_thread(admin.oplog, 200)
                seen["versions"] = [d.agent.firmware_version for d in devices(run)]
            finally:
                await run.close()
                admin.close()
                admin_b.close()
            return seen

        seen = asyncio.run(scenario())
    assert seen["new_leader"] != leader.name
    assert seen["lease_s"] < 5.0, seen
    status = seen["status"]
    assert [w["state"] for w in status["waves"]] == ["done", "done"], status
    assert status["totals"]["updated"] == 2
    assert seen["versions"] == [NEW_FIRMWARE, NEW_FIRMWARE]
    waves = {
        e["detail"]["wave"]: dt.datetime.fromisoformat(e["at"])
        for e in seen["log"]
        if e["action"] == "rollout.wave_start"
    }
    starts = [e for e in seen["log"] if e["action"] == "rollout.wave_start"]
    assert len(starts) == 2 == len(waves), starts  # each wave started exactly once
    # wave 2 waited for wave 1's alert window: a tick of the new leader started it
    assert waves["2"] > seen["killed_at"], (waves, seen["killed_at"])
    assert get_model(MODEL).firmware_version != NEW_FIRMWARE


def test_a_telemetry_retry_on_another_replica_stores_one_row(tmp_path: Path) -> None:
    with replicated_region(tmp_path, 2) as region:
        a, b = region.replicas
        with DmAdmin(a.url, region.ca_file) as admin:
            email = f"retry-{secrets.token_hex(3)}@example.com"
            admin.register("Retry Corp", email, "correct horse battery")
            admin.login(email, "correct horse battery")
            site = admin.create_site("HQ", "UTC")
            device = DeviceCredential(
                f"02:{secrets.token_hex(1)}:00:00:00:02", "SN-RETRY-1", MODEL, tmp_path / "device"
            )
            device.device_id = admin.deploy(device.mac, device.serial_number, MODEL, site)
        assert device.enroll(a.url, region.ca_file).status_code == 201
        report = {
            "device_name": "Room 1",
            "mac": device.mac,
            "serial_number": device.serial_number,
            "server_address": "dm.example",
            "software_version": "10.2.1",
            "firmware_version": "1.0.0",
            "status": "online",
            "network_id": "lan-1",
            "network_type": "ethernet",
            "ipv4_address": "10.0.0.9",
            "time_zone": "UTC",
        }
        report_id = f"retry-{secrets.token_hex(8)}"
        answers = []
        for replica in (a, b, b):  # the answer from A was lost: the device asks B, twice
            with device.client(replica.url, region.ca_file) as http:
                answer = http.post("/v1/device/telemetry", json={**report, REPORT_ID: report_id})
            answers.append((answer.status_code, answer.json()))
        for replica in (a, b):  # an old client sends no id: each post is a reading
            with device.client(replica.url, region.ca_file) as http:
                assert http.post("/v1/device/telemetry", json=report).status_code == 200

        engine = region.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT report_id, fields FROM telemetry WHERE device_id = :d"),
                    {"d": device.device_id},
                ).all()
        finally:
            engine.dispose()
    assert answers == [(200, {"stored": True})] * 3  # the same answer every time
    assert sorted(r.report_id or "" for r in rows) == sorted(["", "", report_id])
    stored = next(r.fields for r in rows if r.report_id == report_id)
    fields = json.loads(stored) if isinstance(stored, str) else stored
    assert REPORT_ID not in fields and fields["mac"] == device.mac  # the id is no telemetry
