"""Negative controls of the `media` checks (roomtrust/comply/checks/media.py): MT-06 and MT-12
over what a four-party call heard and what its capture shows, MT-06 plain RTP and removal, MT-03
relay failover, MT-08 the PSTN leg and MT-16 the recording's audio (also on real files that sox
measures: both tones, one tone, silence, noise, an empty file). Each check passes on what a good
call measures and fails when one figure is what a broken region would give."""

from __future__ import annotations

import math
import random
import shutil
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from roomtrust.comply import audio
from roomtrust.comply.checks import CheckFailed, media
from roomtrust.comply.negative import Case, Controls, all_cases
from services.meeting.domain import recording_media

PEOPLE = ("Ann", "Ben", "Cai")


def heard(**changes: dict[str, int]) -> dict[str, dict[str, dict[str, int]]]:
    """What each of three participants heard of the others (`changes`: "Ann_Ben" -> figures of
    what Ann heard of Ben)."""
    good = {"audio": 50, "video": 3, "unmarked": 0}
    return {
        listener: {
            talker: {**good, **changes.get(f"{listener}_{talker}", {})}
            for talker in PEOPLE
            if talker != listener
        }
        for listener in PEOPLE
    }


def tag(
    flow: str = "Ann out", authenticated: bool = True, length: int | None = 10
) -> dict[str, Any]:
    return {"flow": flow, "authenticated": authenticated, "tag_length": length, "expected": 10}


FLOWS = {"Ann -> Ben": {"before": 30, "after": 60, "gap": 0.4}}
CDR_LEGS = {
    "a1": {"encrypted": True, "transport": "wss"},
    "a2": {"encrypted": True, "transport": "wss"},
    "pstn:+1555": {"encrypted": False, "transport": "pstn+rtp"},
}
OPEN_LEGS = [{"account_id": a, "left_at": None} for a in PEOPLE]

CONTROLS: list[Controls] = [
    Controls(
        media.everyone_heard_everyone,
        {"heard": heard(), "audio_frames": 50, "video_packets": 3},
        {
            "few-frames": ({"heard": heard(Ben_Cai={"audio": 12})}, "Ben heard 12 of Cai's 50"),
            "no-video": ({"heard": heard(Cai_Ann={"video": 0})}, "Cai got 0 of Ann's 3 video"),
            "garbled": ({"heard": heard(Ann_Ben={"unmarked": 4})}, "without the source's marker"),
            "one-deaf": (
                {"heard": {**heard(), "Ann": {"Ben": heard()["Ann"]["Ben"]}}},
                "Ann heard nothing of ['Cai']",
            ),
            "alone": ({"heard": {"Ann": {}}}, "selected no participants heard by Ann"),
            "empty": ({"heard": {}}, "selected no participants"),
        },
    ),
    Controls(
        media.nothing_in_clear,
        {
            "packets": 900,
            "marker_hits": 0,
            "signaling_bytes": 9000,
            "header_found": True,
            "keys_found": [],
        },
        {
            "plain-media": ({"marker_hits": 40}, "media travels in the clear"),
            "key-in-clear": ({"keys_found": ["Ann's send key"]}, "key material in the clear"),
            "keys-not-captured": ({"signaling_bytes": 120}, "the key delivery was not"),
            "blind-search": ({"header_found": False}, "cannot show that anything is absent"),
            "empty": ({"packets": 0}, "selected no captured packets"),
        },
    ),
    Controls(
        media.media_packets_authenticated,
        {"tags": [tag(), tag("Ben in")]},
        {
            "forged": ({"tags": [tag(), tag("Ben in", False, None)]}, "1 of 2 media packet(s)"),
            "short-tag": ({"tags": [tag(length=4)]}, "not of the profile's length"),
            "empty": ({"tags": []}, "selected no media packets"),
        },
    ),
    Controls(
        media.flows_opened_outbound,
        {"first": dict.fromkeys(PEOPLE, "outbound"), "participants": PEOPLE, "dialled_in": 0},
        {
            "inbound": (
                {"first": {**dict.fromkeys(PEOPLE, "outbound"), "Ben": "inbound"}},
                "{'Ben': 'inbound'}",
            ),
            "not-captured": ({"first": {"Ann": "outbound"}}, "no media flow of ['Ben', 'Cai']"),
            "dialled-in": ({"dialled_in": 2}, "2 TCP packet(s)"),
            "empty": ({"participants": ()}, "selected no participants"),
        },
    ),
    Controls(
        media.plain_rtp_reached_nobody,
        {"person": "Ben", "sent": 5, "before": 40, "after": 40, "plain": 0},
        {
            "forwarded": ({"after": 45, "plain": 5}, "Ben received 5 of the 5 plain RTP"),
            "something-else": ({"after": 41}, "received 1 packet(s) while only plain RTP"),
            "empty": ({"sent": 0}, "selected no plain RTP packets sent"),
        },
    ),
    Controls(
        media.plain_rtp_counted,
        {"before": 3, "after": 8, "sent": 5},
        {
            "uncounted": ({"after": 3}, "counted 0 more plain RTP packets, not 5"),
            "overcounted": ({"after": 20}, "counted 17 more"),
            "empty": ({"sent": 0}, "selected no plain RTP packets sent"),
        },
    ),
    Controls(
        media.rekeyed_and_hearing,
        {
            "listeners": {
                "Mia": {"rekeys": 1, "rekey_pending": False, "frames_since": 40},
                "Noa": {"rekeys": 1, "rekey_pending": False, "frames_since": 38},
            },
            "min_frames": 15,
        },
        {
            "no-rekey": (
                {"listeners": {"Mia": {"rekeys": 0, "rekey_pending": False, "frames_since": 40}}},
                "Mia took 0 rekeys",
            ),
            "pending": (
                {"listeners": {"Noa": {"rekeys": 1, "rekey_pending": True, "frames_since": 40}}},
                "Noa still waits for a rekey",
            ),
            "deaf-after": (
                {"listeners": {"Mia": {"rekeys": 1, "rekey_pending": False, "frames_since": 2}}},
                "Mia heard 2 frames after the rekey",
            ),
            "empty": ({"listeners": {}}, "selected no remaining participants"),
        },
    ),
    Controls(
        media.nothing_after_removal,
        {"person": "Ola", "before": 30, "after": 0},
        {
            "still-served": ({"after": 12}, "Ola still received 12 packets"),
            "never-heard": ({"before": 0}, "selected no packets Ola received before the removal"),
        },
    ),
    Controls(
        media.old_keys_open_nothing,
        {"person": "Ola", "opened_before": 20, "after": 80, "opened_after": 0},
        {
            "old-keys-work": ({"opened_after": 80}, "open 80 of the 80 packets"),
            "key-never-worked": ({"opened_before": 0}, "opened nothing even before"),
            "empty": ({"after": 0}, "selected no media packets captured after the removal"),
        },
    ),
    Controls(
        media.moved_off_relay,
        {"relay_of": {"Pia": "relay-2", "Rui": "relay-2"}, "killed": "relay-1"},
        {
            "stuck": ({"relay_of": {"Pia": "relay-2", "Rui": "relay-1"}}, "{'Rui': 'relay-1'}"),
            "no-grant": ({"relay_of": {"Pia": None}}, "{'Pia': None}"),
            "empty": ({"relay_of": {}}, "selected no participants"),
        },
    ),
    Controls(
        media.media_back_within,
        {"flows": FLOWS, "limit": 2.0},
        {
            "long-gap": (
                {"flows": {"Ann -> Ben": {"before": 30, "after": 60, "gap": 3.5}}},
                "media gaps of 2 s or more: {'Ann -> Ben': 3.5}",
            ),
            "lost": (
                {"flows": {"Ann -> Ben": {"before": 30, "after": 0, "gap": None}}},
                "no longer heard after the relay failed: ['Ann -> Ben']",
            ),
            "empty": ({"flows": {}}, "selected no media flows"),
        },
    ),
    Controls(
        media.nobody_left,
        {
            "types": dict.fromkeys(PEOPLE, ("admitted", "media.move")),
            "records": [{"legs": OPEN_LEGS}],
        },
        {
            "call-ended": (
                {"types": {**dict.fromkeys(PEOPLE, ("admitted",)), "Ben": ["conference.ended"]}},
                "{'Ben': ['conference.ended']}",
            ),
            "leg-closed": (
                {"records": [{"legs": [*OPEN_LEGS[:2], {"account_id": "Cai", "left_at": "t"}]}]},
                "legs of the call record were closed: ['Cai']",
            ),
            "leg-missing": ({"records": [{"legs": OPEN_LEGS[:2]}]}, "2 legs for 3 participants"),
            "no-record": ({"records": []}, "0 call records"),
            "empty": ({"types": {}}, "selected no participants"),
        },
    ),
    Controls(
        media.relay_replaced,
        {"healthy": ["relay-2", "relay-3"], "killed": "relay-1", "relays": 2},
        {
            "not-replaced": ({"healthy": ["relay-2"]}, "1 healthy relay(s)"),
            "zombie": ({"healthy": ["relay-1", "relay-2"]}, "relay-1 answers again"),
            "empty": ({"healthy": []}, "selected no healthy relays"),
        },
    ),
    Controls(
        media.phone_hears,
        {
            "packets": 100,
            "payload_types": {0},
            "levels": {440: 9000, 660: 8800, 1000: 12, 1500: 9},
            "heard": (440, 660),
            "silent": (1000, 1500),
        },
        {
            "deaf": ({"levels": {440: 9000, 660: 40, 1000: 12, 1500: 9}}, "{660: 40}"),
            "echo": (
                {"levels": {440: 9000, 660: 8800, 1000: 7000, 1500: 9}},
                "hears tones it must not (Hz: level) {1000: 7000}",
            ),
            "not-g711": ({"payload_types": {0, 111}}, "payload types [0, 111]"),
            "few-packets": ({"packets": 10}, "the phone got 10 packets"),
            "empty": ({"packets": 0}, "selected no packets the phone received"),
        },
    ),
    Controls(
        media.conference_hears_phone,
        {
            "heard": {
                "Sam": {"frames": 90, "level": 8000, "bad_tags": 0},
                "Tia": {"frames": 88, "level": 7900, "bad_tags": 0},
            },
            "hz": 1000,
        },
        {
            "few-frames": (
                {"heard": {"Sam": {"frames": 3, "level": 8000, "bad_tags": 0}}},
                "Sam heard 3 frames of the phone",
            ),
            "silent": (
                {"heard": {"Tia": {"frames": 90, "level": 20, "bad_tags": 0}}},
                "Tia hears the phone's 1000 Hz at level 20",
            ),
            "forged": (
                {"heard": {"Sam": {"frames": 90, "level": 8000, "bad_tags": 4}}},
                "Sam dropped 4 frame(s)",
            ),
            "empty": ({"heard": {}}, "selected no participants"),
        },
    ),
    Controls(
        media.phone_leg_only_unencrypted,
        {"legs": CDR_LEGS, "phone": "pstn:+1555", "others": 2, "transport_prefix": "pstn"},
        {
            "phone-marked-encrypted": (
                {"legs": {**CDR_LEGS, "pstn:+1555": {"encrypted": True, "transport": "pstn"}}},
                "the phone's leg is marked encrypted=True",
            ),
            "other-plain": (
                {"legs": {**CDR_LEGS, "a2": {"encrypted": False, "transport": "wss"}}},
                "legs not marked encrypted: ['a2']",
            ),
            "not-pstn": (
                {"legs": {**CDR_LEGS, "pstn:+1555": {"encrypted": False, "transport": "wss"}}},
                "transport 'wss'",
            ),
            "phone-missing": ({"legs": {"a1": CDR_LEGS["a1"]}}, "no leg of the phone"),
            "leg-missing": (
                {"legs": {"a1": CDR_LEGS["a1"], "pstn:+1555": CDR_LEGS["pstn:+1555"]}},
                "1 other legs, expected 2",
            ),
            "empty": ({"legs": {}}, "selected no legs"),
        },
    ),
    Controls(
        media.dial_in_refused,
        {"answer": {"state": "refused", "reason": "wrong password"}, "because": "password"},
        {
            "let-in": ({"answer": {"state": "in_conference"}}, "ended 'in_conference'"),
            "unexplained": (
                {"answer": {"state": "refused", "reason": "busy"}},
                "does not name the password",
            ),
        },
        single="one dial-in answer: there is nothing to select",
    ),
    Controls(
        media.recording_holds_tones,
        {
            "measured": {
                "playable": True,
                "duration": 3.0,
                "levels_db": {440: -18.0, 660: -18.5},
                "reference_db": {1000: -70.0, 1500: -72.0},
            },
            "tones": (440, 660),
        },
        {
            "unplayable": (
                {"measured": {"playable": False, "bytes": 0, "error": "RIFF header not found"}},
                "sox cannot play the recording (0 bytes): RIFF header not found",
            ),
            "short": (
                {"measured": {"playable": True, "duration": 0.1, "reference_db": {1000: -70}}},
                "lasts 0.10 s",
            ),
            "one-speaker": (
                {
                    "measured": {
                        "playable": True,
                        "duration": 3.0,
                        "levels_db": {440: -18.0, 660: -80.0},
                        "reference_db": {1000: -70.0},
                    }
                },
                "does not hold the tones (Hz: dBFS) {660: -80.0}",
            ),
            "noise": (
                {
                    "measured": {
                        "playable": True,
                        "duration": 3.0,
                        "levels_db": {440: -20.0, 660: -21.0},
                        "reference_db": {1000: -19.0, 1500: -22.0},
                    }
                },
                "the recording is noise",
            ),
            "unmeasured": (
                {
                    "measured": {
                        "playable": True,
                        "duration": 3.0,
                        "levels_db": {440: -18.0},
                        "reference_db": {1000: -70.0},
                    }
                },
                "the tones ['660'] Hz were not measured",
            ),
            "empty": ({"tones": ()}, "selected no tones"),
        },
    ),
]


@pytest.mark.parametrize("case", all_cases(CONTROLS), ids=lambda c: c.id)
def test_a_check_fails_when_its_property_is_broken(case: Case) -> None:
    failed = case.failure()
    assert failed is not None, f"{case.id}: the check passed on broken evidence"
    assert case.reason in str(failed), f"failed for another reason: {failed}"


@pytest.mark.parametrize("controls", CONTROLS, ids=lambda c: c.key)
def test_a_check_passes_on_good_evidence(controls: Controls) -> None:
    controls.check(**controls.good)


# -- MT-16 on real files: what sox measures of a recording ------------------------------------------

RATE = 8000
TONES = (440, 660)
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def wave_file(path: Path, sample: Callable[[int], float], seconds: float = 3.0) -> Path:
    pcm = array("h", (round(sample(n)) for n in range(int(RATE * seconds))))
    path.write_bytes(recording_media.wav(pcm.tobytes(), '[{"conference_id": "sa-test"}]'))
    return path


def sine(hz: float, n: int) -> float:
    return 6000 * math.sin(2 * math.pi * hz * n / RATE)


@needs_sox
def test_both_speakers_tones_are_found(tmp_path: Path) -> None:
    path = wave_file(tmp_path / "call.wav", lambda n: sine(440, n) + sine(660, n))
    measured = audio.measure(path, TONES)
    media.recording_holds_tones(measured, TONES)
    assert measured["sample_rate"] == RATE and measured["channels"] == 1
    assert measured["duration"] == pytest.approx(3.0)
    assert all(-25 < level < -12 for level in measured["levels_db"].values()), measured
    peak = max(measured["spectrum_db"], key=measured["spectrum_db"].get)
    assert peak in (400, 650)  # the spectrum's loudest bands are the tones'


@needs_sox
@pytest.mark.parametrize(
    ("name", "sample", "reason"),
    [
        ("no-660", lambda n: sine(440, n), "does not hold the tones"),
        ("silent", lambda n: 0.0, "does not hold the tones"),
        ("noise", lambda n: random.Random(n).uniform(-6000, 6000), "does not hold the tones"),
        ("tone-elsewhere", lambda n: sine(1000, n), "does not hold the tones"),
    ],
)
def test_a_recording_without_the_tones_fails(
    tmp_path: Path, name: str, sample: Callable[[int], float], reason: str
) -> None:
    measured = audio.measure(wave_file(tmp_path / f"{name}.wav", sample), TONES)
    assert measured["playable"]
    with pytest.raises(CheckFailed, match=reason):
        media.recording_holds_tones(measured, TONES)


@needs_sox
def test_tones_drowned_in_noise_fail(tmp_path: Path) -> None:
    noise = random.Random(7)
    path = wave_file(
        tmp_path / "loud-noise.wav",
        lambda n: sine(440, n) + sine(660, n) + noise.uniform(-20000, 20000),
    )
    with pytest.raises(CheckFailed, match="the recording is noise"):
        media.recording_holds_tones(audio.measure(path, TONES), TONES)


@needs_sox
@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00"], ids=["empty", "truncated"])
def test_an_empty_or_broken_file_does_not_play(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    measured = audio.measure(path, TONES)
    assert not measured["playable"] and measured["error"]
    with pytest.raises(CheckFailed, match="sox cannot play the recording"):
        media.recording_holds_tones(measured, TONES)
