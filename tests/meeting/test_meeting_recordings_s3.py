"""Recordings through the blob store to S3 (issue 17, item 7): a meeting region started as the cloud
program configures it (`ROOMTRUST_BLOB_STORE=s3`, the bucket the program provisions for
prod-meeting-na) writes a stopped recording into that bucket on moto's server, keeps no copy in its
state directory, and serves it to an administrator of the enterprise only: a member of the same
enterprise who was not in the conference gets 403, and another enterprise's administrator 404.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.meeting_client import MeetingApi, Signal
from roomtrust.emulators import MOTO_CREDENTIALS, MotoServer, moto_missing, moto_s3

STACK_ACCOUNT = "210000000001"  # infra/stacks/Pulumi.prod-meeting-na.yaml
BUCKET = f"rt-prod-meeting-na-recordings-{STACK_ACCOUNT}"  # infra/meeting/region.py names it so

pytestmark = pytest.mark.skipif(bool(moto_missing()), reason=str(moto_missing()))


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_s3() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def region(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeetingApi]:
    """`roomtrust serve meeting --region na` on S3; yields its first enterprise's administrator."""
    home = tmp_path_factory.mktemp("na")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "ROOMTRUST_HOME": str(home),
        "ROOMTRUST_BLOB_STORE": "s3",
        "ROOMTRUST_BLOB_BUCKET": BUCKET,
        "ROOMTRUST_BLOB_ENDPOINT_URL": moto.endpoint_url,
        **MOTO_CREDENTIALS,  # the task role's credentials, in the cloud
    }
    command = [sys.executable, "-m", "roomtrust", "serve", "meeting", "--region", "na"]
    process = subprocess.Popen(command, env=env, cwd=home, stderr=subprocess.PIPE, text=True)
    ready = home / "meeting" / "na" / "ready.json"
    try:
        deadline = time.monotonic() + 90
        while not ready.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the region did not start"
            time.sleep(0.2)
        port = json.loads(ready.read_text())["port"]
        url, ca = f"https://127.0.0.1:{port}", home / "meeting" / "na" / "ca" / "ca.pem"
        with MeetingApi(url, ca) as admin:
            admin.register_enterprise()
            admin.home = home  # type: ignore[attr-defined]
            yield admin
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _joined(api: MeetingApi, conference_id: str) -> Signal:
    sig = await api.signaling().__aenter__()
    await sig.send({"type": "join", "conference_id": conference_id})
    await sig.expect("admitted")
    return sig


def _record(owner: MeetingApi, recorder: MeetingApi) -> tuple[str, str]:
    conference = owner.create_conference("Recorded", participant_locations=["us-east"])
    cid = conference["conference_id"]

    async def scenario() -> str:
        a, r = await _joined(owner, cid), await _joined(recorder, cid)
        await r.send({"type": "record", "action": "start"})
        started = await a.expect("notice")
        await r.send({"type": "record", "action": "stop"})
        await a.expect("notice")
        for s in (a, r):
            await s.__aexit__()
        return str(started["recording_id"])

    return cid, asyncio.run(scenario())


def test_a_recording_lands_in_the_regions_bucket_and_only_its_administrator_downloads_it(
    region: MeetingApi, moto: MotoServer
) -> None:
    owner, recorder = region.member("Olga Owner"), region.member("Rui Recorder")
    bystander = region.member("Bea Bystander")
    cid, recording_id = _record(owner, recorder)

    objects = moto.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert [o["Key"] for o in objects] == [f"recordings/{recording_id}.rec"]
    sealed = moto.client().get_object(Bucket=BUCKET, Key=f"recordings/{recording_id}.rec")
    assert cid.encode() not in sealed["Body"].read()  # encrypted before it leaves the region
    home: Path = region.home  # type: ignore[attr-defined]
    assert not list((home / "meeting" / "na" / "recordings").glob("*.rec")), "a copy stayed"

    content = region.request("GET", f"/v1/recordings/{recording_id}/content")
    assert content.status_code == 200 and cid.encode() in content.content
    # a member of the enterprise outside the sharing rules is refused; another enterprise is not
    # even told the recording exists
    assert bystander.request("GET", f"/v1/recordings/{recording_id}/content").status_code == 403
    with MeetingApi(region.url, region.ca_file) as stranger:
        stranger.register_enterprise("Other Corp")
        answer = stranger.request("GET", f"/v1/recordings/{recording_id}/content")
        assert answer.status_code == 404


def test_a_recording_whose_object_is_gone_is_not_found_not_a_500(
    region: MeetingApi, moto: MotoServer
) -> None:
    """Negative control: the download really reads the bucket."""
    owner, recorder = region.member("Otto Owner"), region.member("Rita Recorder")
    _cid, recording_id = _record(owner, recorder)
    moto.client().delete_object(Bucket=BUCKET, Key=f"recordings/{recording_id}.rec")
    answer = region.request("GET", f"/v1/recordings/{recording_id}/content")
    assert answer.status_code == 404
    assert answer.json()["field"] == "recording_id"
