"""Checks of features/dm_firmware.feature (MT-05, DM-05): staged rollouts of signed firmware to
virtual room systems, and the encrypted download one room system fetches by hand.

The evidence is what the DM admin API answered (rollout status, device list, operation log), what
each virtual device's agent holds (its version, slots and firmware reports) and the bytes of a
download with the key its command carried."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protocol import firmware
from protocol.errors import WireError
from roomtrust.comply.checks import CheckFailed, check, counted, names_of, require, selected

CLEAR_PREFIX = 32  # bytes of the image that must not appear in its download


# -- rollouts ---------------------------------------------------------------------------------------


@check("firmware")
def rollout_completed_in_waves(
    status: Mapping[str, Any], sizes: Sequence[int], steps: Sequence[Sequence[str | None]]
) -> None:
    """The rollout completed in waves of the expected sizes with every device of each wave
    updated, and the operation log shows each wave start only once the one before was done
    (`steps`: the log's (action, wave) of the rollout's waves, oldest first)."""
    state = status.get("state")
    require(state == "completed", f"the rollout is {state!r}: {status.get('reason')}")
    waves = selected(status.get("waves") or [], "waves of the rollout")
    got = [w.get("size") for w in waves]
    require(got == list(sizes), f"the waves have sizes {got}, not {list(sizes)}")
    short = [
        (n, w.get("updated"), w.get("size"))
        for n, w in enumerate(waves, 1)
        if w.get("updated") != w.get("size")
    ]
    require(not short, f"waves not fully updated (wave, updated, size): {short}")
    order = [
        (action, str(n))
        for n in range(1, len(waves) + 1)
        for action in ("rollout.wave_start", "rollout.wave_done")
    ]
    logged = [tuple(s) for s in steps]
    require(logged == order, f"the operation log shows the waves as {logged}, not {order}")


@check("firmware")
def runs_from_second_slot(devices: Sequence[Mapping[str, Any]], factory: str, version: str) -> None:
    """Every room system runs `version` from its second slot, its factory version kept in the
    first (`devices`: per device {"device", "version", "active", "slots"})."""
    selected(devices, "room systems")
    wrong = [
        d
        for d in devices
        if (d.get("version"), d.get("active"), list(d.get("slots") or []))
        != (version, 1, [factory, version])
    ]
    require(
        not wrong, f"room systems not running {version} from slot 1 beside {factory}: {wrong[:3]}"
    )


@check("firmware")
def fleet_listed_with(
    listed: Mapping[str, str | None], device_ids: Collection[str], version: str
) -> None:
    """The DM service's device list shows every room system with firmware `version`
    (`listed`: device id -> firmware version listed)."""
    selected(device_ids, "room systems")
    wrong = {d: listed.get(d) for d in device_ids if listed.get(d) != version}
    require(not wrong, f"the DM service lists room systems with firmware {wrong}, not {version!r}")


@check("firmware")
def refused_everywhere(
    results: Sequence[Mapping[str, Any]],
    device_ids: Collection[str],
    failed_targets: Collection[str],
    reason: str,
) -> None:
    """Every room system answered its one firmware command by refusing the image for `reason`,
    and the operation log records a failure for each (`failed_targets`: devices named by the
    log's `rollout.device_failed` entries)."""
    selected(device_ids, "room systems")
    require(
        len(results) == len(device_ids),
        f"{len(results)} firmware report(s) for {len(device_ids)} room systems",
    )
    outcomes = sorted({(r.get("ok"), r.get("reason")) for r in results}, key=str)
    require(
        outcomes == [(False, reason)],
        f"the room systems reported (ok, reason) {outcomes}, not (False, {reason!r})",
    )
    require(
        set(failed_targets) == set(device_ids),
        f"the operation log records failures of {names_of(set(failed_targets))}, "
        f"not of {names_of(device_ids)}",
    )


@check("firmware")
def paused_at_threshold(status: Mapping[str, Any]) -> None:
    """The rollout paused because its error threshold was reached."""
    state, why = status.get("state"), status.get("reason")
    require(state == "paused", f"the rollout is {state!r}, not paused ({why})")
    require("reached its error threshold" in str(why), f"the rollout paused because {why!r}")


@check("firmware")
def kept_version(
    devices: Sequence[Mapping[str, Any]], listed: Mapping[str, str | None], factory: str
) -> None:
    """No room system left its factory version or wrote its second slot, and the DM service
    lists each with it (`devices`: per device {"device", "version", "slots"})."""
    selected(devices, "room systems")
    moved = [
        d
        for d in devices
        if d.get("version") != factory or list(d.get("slots") or []) != [factory, None]
    ]
    require(not moved, f"room systems left {factory} or wrote their second slot: {moved[:3]}")
    wrong = {
        str(d.get("device")): listed.get(str(d.get("device")))
        for d in devices
        if listed.get(str(d.get("device"))) != factory
    }
    require(not wrong, f"the DM service lists room systems with firmware {wrong}, not {factory!r}")


@check("firmware")
def rolled_back(
    results: Sequence[Mapping[str, Any]],
    devices: Sequence[Mapping[str, Any]],
    reason: str,
    failed_version: str,
    factory: str,
) -> None:
    """Every room system installed `failed_version`, reported `reason` after booting it, rolled
    back, and runs `factory` again from its first slot (`devices`: per device {"device",
    "version", "active", "slots"})."""
    selected(devices, "room systems")
    require(
        len(results) == len(devices),
        f"{len(results)} firmware report(s) for {len(devices)} room systems",
    )
    expected = (reason, True, failed_version, factory)
    wrong = [
        r
        for r in results
        if (r.get("reason"), r.get("rolled_back"), r.get("failed_version"), r.get("version"))
        != expected
    ]
    require(
        not wrong,
        f"reports that are not a rollback from {failed_version} to {factory} for {reason!r}: "
        f"{wrong[:3]}",
    )
    slots = [factory, failed_version]
    not_back = [
        d
        for d in devices
        if (d.get("version"), d.get("active"), list(d.get("slots") or [])) != (factory, 0, slots)
    ]
    require(
        not not_back,
        f"room systems not back on {factory} in slot 0 beside {failed_version}: {not_back[:3]}",
    )


# -- one download ------------------------------------------------------------------------------------


@check("firmware")
def install_command(command: Mapping[str, Any] | None) -> None:
    """The room system received a firmware install command, naming a download and its key, over
    its command channel (None: nothing arrived)."""
    require(command, "no command arrived on the room system's command channel")
    assert command is not None
    payload = command.get("payload") or {}
    kind, op = command.get("kind"), payload.get("op")
    require(
        (kind, op) == ("firmware", "install"),
        f"the command is {kind!r} {op!r}, not a firmware install",
    )
    require(payload.get("download") and payload.get("key"), "the command names no download or key")


@check("firmware")
def download_is_ciphertext(status: int, content: bytes, marker: bytes, plain: bytes) -> None:
    """The download, fetched with the device's own certificate, is served and holds neither the
    image's marker nor its first bytes in the clear."""
    require(status == 200, f"the download was answered {status}, not 200")
    counted(len(content), "bytes of the download")
    require(marker not in content, "the download holds the image's marker in the clear")
    require(
        plain[:CLEAR_PREFIX] not in content,
        f"the download holds the image's first {CLEAR_PREFIX} bytes in the clear",
    )


@check("firmware")
def decrypts_to_signed_image(
    ciphertext: bytes,
    key: bytes,
    context: bytes,
    release_key_pem: bytes,
    model: str,
    installed_version: str,
    plain: bytes,
) -> None:
    """The key from the command opens the download (bound to its download id) to a package
    signed with the region's release key for this model, holding exactly the uploaded image,
    and a fresh key does not open it."""
    counted(len(ciphertext), "bytes of the download")
    try:
        package = firmware.decrypt_download(ciphertext, key, context=context)
    except firmware.FirmwareRejected as exc:
        raise CheckFailed(f"the key from the command does not open the download: {exc}") from None
    try:
        signed = firmware.verify_package(
            package,
            firmware.load_public_key(release_key_pem),
            model=model,
            installed_version=installed_version,
        )
    except WireError as exc:  # a rejected package, or a release key that cannot be read
        raise CheckFailed(
            f"the package is not an image signed with the region's release key: {exc}"
        ) from None
    require(signed.image == plain, "the signed image is not the one the administrator uploaded")
    try:
        firmware.decrypt_download(
            ciphertext, os.urandom(firmware.DOWNLOAD_KEY_BYTES), context=context
        )
    except firmware.FirmwareRejected:
        return
    raise CheckFailed(
        "a fresh key opens the download too: it is not encrypted under a key of its own"
    )
