"""Firmware images and diagnostics bundles go through the region's blob store, so one DM process
uploads and another serves (issue 16, item 7), with the directory backend (a shared volume) and
with the Azure backend (Azurite, the storage account's emulator).

Two `roomtrust serve dm` processes of one region share what replicas share in the cloud: the
database (a fresh PostgreSQL database), the region CA and release key (mounted secret files) and
the blob store. Each keeps its own state directory. An administrator uploads an image through A; a
device enrolled through B takes the rollout's command on B's channel and downloads the image from
B. The device uploads a diagnostics bundle to B; the administrator fetches it from A.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from devices_virtual.agent.firmware import virtual_image
from roomtrust.container_host import fresh_database, postgres_missing, write_region_secrets
from roomtrust.emulators import azurite, azurite_missing
from services.common import firmware
from services.common.blobstore import AzureBlobStore
from services.dm.client import DeviceCredential, DmAdmin

REGION = "eu"
MODEL = "MeetingBoard 86"
OLD, NEW = "273.410.0.3", "273.500.0.0"
PASSWORD = "correct horse battery"
START_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(bool(postgres_missing()), reason=str(postgres_missing()))


@contextmanager
def region_process(home: Path, env: dict[str, str]) -> Iterator[str]:
    """`roomtrust serve dm --region eu` with `env` on a free port; yields its URL."""
    ready = home / "dm" / REGION / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "roomtrust", "serve", "dm", "--region", REGION],
        env={"PATH": str(Path(sys.executable).parent), **env, "ROOMTRUST_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"the region exited ({process.returncode}): {output[-1500:]}")
            assert time.monotonic() < deadline, "the region did not start"
            time.sleep(0.1)
        yield f"https://127.0.0.1:{json.loads(ready.read_text())['port']}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def first_command(device: DeviceCredential, url: str, ca: Path) -> dict[str, Any]:
    channel = url.replace("https://", "wss://") + "/v1/device/commands"
    async with websockets.connect(channel, ssl=device.ssl_context(ca)) as ws:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
        return message


@pytest.mark.parametrize("backend", ["directory", "azure"])
def test_one_process_uploads_and_another_serves(backend: str, tmp_path: Path) -> None:
    if backend == "azure" and azurite_missing():
        pytest.skip(str(azurite_missing()))
    keys = write_region_secrets(tmp_path / "secrets", f"dm-{REGION}")
    ca = keys.files["region-ca-cert"]
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database())
        env = {
            "ROOMTRUST_REGION": REGION,
            "ROOMTRUST_PORT": "0",
            "ROOMTRUST_DATABASE_URL": f"postgresql+psycopg://root@127.0.0.1:5432/{database}",
            "ROOMTRUST_CA_CERT_FILE": str(ca),
            "ROOMTRUST_CA_KEY_FILE": str(keys.files["region-ca-key"]),
            "ROOMTRUST_RELEASE_KEY_FILE": str(keys.files["release-key"]),
        }
        if backend == "azure":
            blob = stack.enter_context(azurite())
            prefix = f"t{secrets.token_hex(3)}-"
            env |= {
                "ROOMTRUST_BLOB_STORE": "azure",
                "ROOMTRUST_BLOB_CONNECTION_STRING": blob.connection_string,
                "ROOMTRUST_BLOB_CONTAINER_PREFIX": prefix,
            }
        else:
            env["ROOMTRUST_BLOB_DIRECTORY"] = str(tmp_path / "shared-volume")
        # one after the other: the first migrates the shared database
        url_a = stack.enter_context(region_process(tmp_path / "replica-a", env))
        url_b = stack.enter_context(region_process(tmp_path / "replica-b", env))

        admin = stack.enter_context(DmAdmin(url_a, ca))
        email = f"store-{secrets.token_hex(3)}@example.com"
        admin.register("Store Corp", email, PASSWORD)
        admin.login(email, PASSWORD)
        site = admin.create_site("Oslo", "Europe/Oslo")
        device = DeviceCredential(
            f"02:{secrets.token_hex(1)}:00:00:00:01", "SN-STORE-1", MODEL, tmp_path / "device"
        )
        admin.deploy(device.mac, device.serial_number, MODEL, site)
        assert device.enroll(url_b, ca).status_code == 201
        with device.client(url_b, ca) as http:
            beat = http.post(
                "/v1/device/heartbeat", json={"status": "online", "firmware_version": OLD}
            )
            assert beat.status_code == 200, beat.text

        # firmware: uploaded through A, downloaded from B
        image = virtual_image(MODEL, NEW) + secrets.token_bytes(4096)
        stored = admin.upload_image(MODEL, NEW, image)
        rollout = admin.create_rollout(
            stored["image_id"],
            waves=[{"percent": 100}],
            target={"site_ids": [site]},
            error_threshold={"count": 5},
        )
        admin.control_rollout(rollout["rollout_id"], "start")
        command = asyncio.run(first_command(device, url_b, ca))
        assert command["kind"] == "firmware", command
        payload = command["payload"]
        with device.client(url_b, ca) as http:
            fetched = http.get(payload["download"])
        assert fetched.status_code == 200, fetched.text
        download_id = payload["download"].rsplit("/", 1)[-1]
        package = firmware.decrypt_download(
            fetched.content, base64.b64decode(payload["key"]), context=download_id.encode()
        )
        with DmAdmin(url_b, ca) as other_replica:
            assert other_replica.release_key() == admin.release_key()
        published = firmware.load_public_key(admin.release_key().encode())
        signed = firmware.verify_package(package, published, model=MODEL, installed_version=OLD)
        assert signed.image == image

        # diagnostics: requested through A, uploaded to B, fetched from A
        request = admin.request_diagnostics(str(device.device_id))
        bundle = {
            "command_id": request["command_id"],
            "device_id": device.device_id,
            "mac": device.mac,
            "ip_address": "10.0.0.7",
            "logs": {"system.log": "boot ok"},
        }
        with device.client(url_b, ca) as http:
            uploaded = http.post("/v1/device/diagnostics", json=bundle)
        assert uploaded.status_code == 201, uploaded.text
        bundle_id = uploaded.json()["bundle_id"]
        assert json.loads(admin.fetch_diagnostics(bundle_id))["logs"] == {"system.log": "boot ok"}

        # the objects are in the shared store, and in neither process's own state directory
        if backend == "azure":
            objects = {
                name: AzureBlobStore.connect(
                    f"{prefix}{name}", connection_string=blob.connection_string, create=False
                ).keys()
                for name in ("firmware", "diagnostics")
            }
        else:
            shared = tmp_path / "shared-volume"
            objects = {
                name: sorted(p.name for p in (shared / name).iterdir())
                for name in ("firmware", "diagnostics")
            }
        assert objects == {
            "firmware": [f"{stored['image_id']}.rtfw"],
            "diagnostics": [f"{bundle_id}.json"],
        }
        for replica in ("replica-a", "replica-b"):
            own = tmp_path / replica / "dm" / REGION
            assert not list(own.glob("objects/*/*")), replica
            assert not (own / "release").exists() and not (own / "ca").exists(), replica
