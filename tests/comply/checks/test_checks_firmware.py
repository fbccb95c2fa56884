"""Negative controls of the `firmware` checks (roomtrust/comply/checks/firmware.py): MT-05 and
DM-05 over rollout statuses, what each room system's agent holds, the DM device list and
operation log, and one encrypted download with the key its command carried (made here with the
real package format, signed and encrypted as the DM service does)."""

from __future__ import annotations

from typing import Any

import pytest

from roomtrust.comply.checks import firmware as checks
from roomtrust.comply.negative import Case, Controls, all_cases
from services.common import firmware

FACTORY, NEW = "266.410.0.0", "266.420.0.0"
DEVICES = ("d1", "d2", "d3", "d4")
MODEL = "MeetingBoard 86"


def status(
    state: str = "completed", sizes: tuple[int, ...] = (1, 3), **extra: Any
) -> dict[str, Any]:
    waves = [{"size": n, "updated": n} for n in sizes]
    return {"state": state, "waves": waves, "reason": None, **extra}


def wave_log(waves: int = 2) -> list[tuple[str, str]]:
    return [
        (action, str(n))
        for n in range(1, waves + 1)
        for action in ("rollout.wave_start", "rollout.wave_done")
    ]


def slots(version: str, active: int, second: str | None, /, **changes: Any) -> list[dict[str, Any]]:
    """What each device's agent holds; `changes` alter the last device."""
    held = [
        {"device": d, "version": version, "active": active, "slots": [FACTORY, second]}
        for d in DEVICES
    ]
    held[-1] = {**held[-1], **changes}
    return held


def report(**changes: Any) -> dict[str, Any]:
    return {"ok": False, "reason": "bad-signature", **changes}


def rollback(**changes: Any) -> dict[str, Any]:
    good = {"ok": False, "reason": "health-check-failed", "rolled_back": True}
    return {**good, "failed_version": NEW, "version": FACTORY, **changes}


RELEASE = firmware.generate_release_key()
OTHER_RELEASE = firmware.generate_release_key()
PLAIN = b"VIRTUAL-IMAGE " * 64 + b"CLEAR-IMAGE-MARKER-1234"
KEY = firmware.new_download_key()
CONTEXT = b"dl-42"


def download(
    key: Any = RELEASE, model: str = MODEL, image: bytes = PLAIN, context: bytes = CONTEXT
) -> bytes:
    package = firmware.pack(firmware.sign_image(key, model=model, version=NEW, image=image))
    return firmware.encrypt_download(package, KEY, context=context)


CONTROLS: list[Controls] = [
    Controls(
        checks.rollout_completed_in_waves,
        {"status": status(), "sizes": [1, 3], "steps": wave_log()},
        {
            "paused": ({"status": status("paused", reason="threshold")}, "is 'paused'"),
            "one-wave": ({"status": status(sizes=(4,))}, "sizes [4], not [1, 3]"),
            "half-updated": (
                {
                    "status": {
                        **status(),
                        "waves": [{"size": 1, "updated": 1}, {"size": 3, "updated": 2}],
                    }
                },
                "(2, 2, 3)",
            ),
            "overlapping-waves": (
                {"steps": [wave_log()[0], wave_log()[2], wave_log()[1], wave_log()[3]]},
                "the operation log shows the waves as",
            ),
            "empty": ({"status": status(sizes=())}, "selected no waves of the rollout"),
        },
    ),
    Controls(
        checks.runs_from_second_slot,
        {"devices": slots(NEW, 1, NEW), "factory": FACTORY, "version": NEW},
        {
            "not-installed": ({"devices": slots(NEW, 1, NEW, version=FACTORY)}, "not running"),
            "same-slot": ({"devices": slots(NEW, 1, NEW, active=0)}, "from slot 1"),
            "factory-overwritten": (
                {"devices": slots(NEW, 1, NEW, slots=[NEW, NEW])},
                "beside 266.410.0.0",
            ),
            "empty": ({"devices": []}, "selected no room systems"),
        },
    ),
    Controls(
        checks.fleet_listed_with,
        {"listed": dict.fromkeys(DEVICES, NEW), "device_ids": DEVICES, "version": NEW},
        {
            "stale": ({"listed": {**dict.fromkeys(DEVICES, NEW), "d2": FACTORY}}, "'d2'"),
            "unlisted": ({"listed": {"d1": NEW}}, "'d4': None"),
            "empty": ({"device_ids": ()}, "selected no room systems"),
        },
    ),
    Controls(
        checks.refused_everywhere,
        {
            "results": [report() for _ in DEVICES],
            "device_ids": DEVICES,
            "failed_targets": DEVICES,
            "reason": "bad-signature",
        },
        {
            "installed": (
                {"results": [*(report() for _ in DEVICES[1:]), {"ok": True, "reason": None}]},
                "(True, None)",
            ),
            "other-reason": (
                {"results": [report(reason="decrypt-failed") for _ in DEVICES]},
                "'decrypt-failed'",
            ),
            "silent-device": ({"results": [report()]}, "1 firmware report(s) for 4"),
            "unlogged": ({"failed_targets": DEVICES[:2]}, "records failures of ['d1', 'd2']"),
            "empty": ({"device_ids": ()}, "selected no room systems"),
        },
    ),
    Controls(
        checks.paused_at_threshold,
        {"status": status("paused", reason="wave 1 reached its error threshold (2 of 2)")},
        {
            "ran-on": ({"status": status("completed")}, "is 'completed', not paused"),
            "paused-by-hand": (
                {"status": status("paused", reason="paused by an administrator")},
                "paused because 'paused by an administrator'",
            ),
        },
        single="one rollout status: there is nothing to select",
    ),
    Controls(
        checks.kept_version,
        {
            "devices": slots(FACTORY, 0, None),
            "listed": dict.fromkeys(DEVICES, FACTORY),
            "factory": FACTORY,
        },
        {
            "booted-forged": ({"devices": slots(FACTORY, 0, None, version=NEW)}, "left 266.410"),
            "slot-written": (
                {"devices": slots(FACTORY, 0, None, slots=[FACTORY, NEW])},
                "wrote their second slot",
            ),
            "listed-new": ({"listed": {**dict.fromkeys(DEVICES, FACTORY), "d3": NEW}}, "'d3'"),
            "empty": ({"devices": []}, "selected no room systems"),
        },
    ),
    Controls(
        checks.rolled_back,
        {
            "results": [rollback() for _ in DEVICES],
            "devices": slots(FACTORY, 0, NEW),
            "reason": "health-check-failed",
            "failed_version": NEW,
            "factory": FACTORY,
        },
        {
            "kept-broken": (
                {"results": [rollback(rolled_back=False, version=NEW) for _ in DEVICES]},
                "not a rollback from 266.420.0.0 to 266.410.0.0",
            ),
            "still-on-new": (
                {"devices": slots(FACTORY, 0, NEW, version=NEW, active=1)},
                "not back on 266.410.0.0 in slot 0",
            ),
            "never-installed": (
                {"devices": slots(FACTORY, 0, NEW, slots=[FACTORY, None])},
                "beside 266.420.0.0",
            ),
            "missing-report": ({"results": [rollback()]}, "1 firmware report(s) for 4"),
            "empty": ({"devices": []}, "selected no room systems"),
        },
    ),
    Controls(
        checks.install_command,
        {
            "command": {
                "kind": "firmware",
                "payload": {"op": "install", "download": "/x", "key": "k"},
            }
        },
        {
            "nothing": ({"command": None}, "no command arrived"),
            "config": ({"command": {"kind": "config", "payload": {}}}, "'config' None"),
            "no-key": (
                {"command": {"kind": "firmware", "payload": {"op": "install", "download": "/x"}}},
                "names no download or key",
            ),
        },
        single="one command, or None when none arrived: there is nothing to select",
    ),
    Controls(
        checks.download_is_ciphertext,
        {
            "status": 200,
            "content": download(),
            "marker": b"CLEAR-IMAGE-MARKER-1234",
            "plain": PLAIN,
        },
        {
            "refused": ({"status": 404}, "answered 404"),
            "plain-image": ({"content": b"header" + PLAIN}, "marker in the clear"),
            "image-head": ({"content": PLAIN[:40]}, "first 32 bytes in the clear"),
            "empty": ({"content": b""}, "selected no bytes of the download"),
        },
    ),
    Controls(
        checks.decrypts_to_signed_image,
        {
            "ciphertext": download(),
            "key": KEY,
            "context": CONTEXT,
            "release_key_pem": firmware.public_key_pem(RELEASE),
            "model": MODEL,
            "installed_version": FACTORY,
            "plain": PLAIN,
        },
        {
            "wrong-key": ({"key": firmware.new_download_key()}, "does not open the download"),
            "other-download": ({"context": b"dl-43"}, "does not open the download"),
            "foreign-signer": (
                {"ciphertext": download(key=OTHER_RELEASE)},
                "not an image signed with the region's release key",
            ),
            "other-model": ({"ciphertext": download(model="MeetingBar A30")}, "is for"),
            "swapped-image": ({"plain": PLAIN + b"!"}, "not the one the administrator uploaded"),
            "empty": ({"ciphertext": b""}, "selected no bytes of the download"),
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
