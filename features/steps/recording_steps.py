"""Steps of the MT-16 recording scenario of features/media.feature: a recorded three-party call
whose downloaded recording is measured by sox, in the media region of the shared `meeting_stack`.

The call runs on the media scene's event loop (`media_steps.Scene`), so the talkers keep sending
while the recording runs. The downloaded WAVE file and what sox measured of it (format, tone and
reference band levels, a coarse spectrum) are written to the scenario's evidence folder.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pytest_bdd import given, parsers, then, when

from features.steps.media_steps import Scene
from media_core.sources import AudioSource
from protocol.signaling import MessageType as T
from protocol.signaling import NoticeKind, RecordAction
from roomtrust.comply import audio, shown
from roomtrust.comply.checks import common
from roomtrust.comply.checks import media as checks
from roomtrust.comply.checks import meeting as meeting_checks
from roomtrust.comply.evidence import Evidence
from services.meeting import audit


@given(
    parsers.parse(
        '"{first}" talks a {hz1:d} Hz tone and "{second}" a {hz2:d} Hz tone while "{third}" listens'
    )
)
def two_speakers(scene: Scene, first: str, hz1: int, second: str, hz2: int, third: str) -> None:
    assert third in scene.calls, f"{third} is not in the call"

    async def talk() -> None:
        for index, (person, hz) in enumerate(((first, hz1), (second, hz2))):
            scene.calls[person].start_audio(
                AudioSource(ssrc=0x1600 + index, tone_hz=hz, with_audio_level=False)
            )

    scene.run(talk())
    scene.facts["tones"] = (hz1, hz2)


@when(parsers.parse('"{person}" records the call for {seconds:d} seconds'))
def records(scene: Scene, person: str, seconds: int) -> None:
    scene.facts["files_before"] = audit.recording_files(scene.home)
    call = scene.calls[person]

    async def record() -> dict[str, Any]:
        await call.send({"type": T.RECORD, "action": RecordAction.START})
        started = await call.expect(T.NOTICE)
        await asyncio.sleep(seconds)
        await call.send({"type": T.RECORD, "action": RecordAction.STOP})
        while (await call.expect(T.NOTICE))["kind"] != NoticeKind.RECORDING_STOPPED:
            pass
        return started

    started = scene.run(record(), timeout=seconds + 30)
    scene.facts |= {"recording_id": started["recording_id"], "recorded_seconds": seconds}


@then(parsers.parse('everyone in the call was told it is recorded by "{recorder}"'))
def told(scene: Scene, recorder: str) -> None:
    notices = {
        person: [m for m in call.signal.received if m.get("type") == T.NOTICE]
        for person, call in scene.calls.items()
    }
    meeting_checks.told_who_records(notices, recorder)


@then(
    parsers.parse(
        "the recording downloaded by the administrator plays and sox finds {hz1:d} Hz and "
        "{hz2:d} Hz"
    )
)
def downloaded_plays(scene: Scene, hz1: int, hz2: int, evidence: Evidence) -> None:
    assert scene.admin is not None
    response = scene.admin.request("GET", f"/v1/recordings/{scene.facts['recording_id']}/content")
    common.status_is(response.status_code, 200, "the administrator's download")
    path = evidence.path("recording.wav")
    path.write_bytes(response.content)
    measured = audio.measure(path, (hz1, hz2))
    measured["content_type"] = response.headers.get("content-type")
    evidence.write_json("recording-measured-by-sox.json", measured)
    evidence.show(
        shown.RECORDING_SPECTRUM,
        {
            "playable": measured.get("playable"),
            "seconds": measured.get("duration"),
            "tones dBFS": measured.get("levels_db"),
            "references dBFS": measured.get("reference_db"),
            "overall dBFS": measured.get("overall_db"),
            "tool": measured.get("tool"),
        },
    )
    checks.recording_holds_tones(
        measured, (hz1, hz2), min_seconds=scene.facts["recorded_seconds"] - 1.0
    )


@then(parsers.parse('the recording file is in region "{region}"\'s storage and nowhere else'))
def stored_in_region(scene: Scene, region: str) -> None:
    before = scene.facts["files_before"]
    after = audit.recording_files(scene.home)
    new = {r: set(files) - set(before.get(r, [])) for r, files in after.items()}
    recording_id = scene.facts["recording_id"]
    path = scene.home / "meeting" / region / "recordings" / f"{recording_id}.rec"
    raw = path.read_bytes() if path.exists() else b""
    meeting_checks.recording_only_in(new, region, recording_id, raw, scene.conference_id)


@then(parsers.parse('"{person}", outside the recording\'s sharing rules, gets 403 for it'))
def outsider_refused(scene: Scene, person: str) -> None:
    recording_id = scene.facts["recording_id"]
    response = scene.apis[person].request("GET", f"/v1/recordings/{recording_id}/content")
    common.status_is(response.status_code, 403, f"{person}'s download")
