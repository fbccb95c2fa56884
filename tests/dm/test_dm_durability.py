"""No acknowledged write is lost: a DM region killed with SIGKILL right after answering 200 to
telemetry still has every acknowledged reading after restart."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import sqlalchemy as sa

from protocol.stack import read_stack
from roomtrust.harness.stores import region_engine
from roomtrust.stack import launcher
from services.dm.client import DeviceCredential, DmAdmin


def test_acknowledged_telemetry_survives_sigkill(tmp_path: Path, schema_prefix: str) -> None:
    home = tmp_path / "home"
    stack = launcher.start(home, services=["dm"], schema_prefix=f"{schema_prefix}kill_")
    try:
        entry = stack.endpoint("dm", "au")
        url, ca = entry.url, entry.ca_file
        with DmAdmin(url, ca) as admin:
            admin.register("Durable Ltd", "ops@durable.example", "correct horse battery")
            admin.login("ops@durable.example", "correct horse battery")
            site = admin.create_site("Sydney", "Australia/Sydney")
            devices = []
            for i in range(8):
                device = DeviceCredential(
                    f"02:00:00:00:10:{i:02x}", f"SN{i}", "MeetingBoard 86", tmp_path / "keys"
                )
                admin.deploy(device.mac, device.serial_number, device.model, site)
                assert device.enroll(url, ca).status_code == 201
                devices.append(device)

        acknowledged: list[str] = []
        lock = threading.Lock()

        def send(device: DeviceCredential, n: int) -> None:
            with device.client(url, ca, timeout=30) as http:
                for i in range(n):
                    marker = f"{device.mac[-2:]}.{i}"
                    response = http.post(
                        "/v1/device/telemetry", json={"configuration_version": marker}
                    )
                    if response.status_code == 200:
                        with lock:
                            acknowledged.append(marker)

        threads = [threading.Thread(target=send, args=(d, 25)) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # kill the instant the last 200 has been read: no graceful shutdown, no flush
        os.kill(entry.pid, signal.SIGKILL)
        assert len(acknowledged) == 200

        launcher.restart_region(home, "dm", "au")
        engine = region_engine(read_stack(home), "dm", "au")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT fields FROM telemetry")).scalars().all()
        engine.dispose()
        stored = {
            (r if isinstance(r, dict) else json.loads(r))["configuration_version"] for r in rows
        }
        assert set(acknowledged) <= stored
    finally:
        launcher.stop(home)
