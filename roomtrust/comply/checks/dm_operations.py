"""Checks of features/dm_operations.feature (DM-05, DM-08, DM-13): health alerts, bulk profile
pushes over the devices' command channel, diagnostics bundles and telemetry retention."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protocol.fields import DIAGNOSTICS_BUNDLE_FIELDS
from roomtrust.comply.checks import check, counted, names_of, require, selected

DIAGNOSIS_FIELDS = frozenset(DIAGNOSTICS_BUNDLE_FIELDS)


@check("dm_operations")
def active_alert(alerts: Sequence[Mapping[str, Any]], severity: str, component: str) -> None:
    """The device's fault is listed as an active alert of the expected severity and component."""
    require(alerts, "no active alert is listed for the device")
    first = alerts[0]
    seen = (first.get("severity"), first.get("component"))
    require(seen == (severity, component), f"the alert is {seen}, not {(severity, component)}")


@check("dm_operations")
def acknowledged_then_cleared(acknowledged: str | None, cleared: str | None) -> None:
    """Acknowledging and then clearing the alert moves it to those states."""
    require(acknowledged == "acknowledged", f"after acknowledge the alert is {acknowledged!r}")
    require(cleared == "cleared", f"after clear the alert is {cleared!r}")


@check("dm_operations")
def oplog_records(actions: Collection[str], expected: Collection[str]) -> None:
    """The operation log holds exactly the expected actions on the target."""
    selected(actions, "operation log entries for the target")
    require(
        set(actions) == set(expected),
        f"the operation log holds {names_of(actions)}, expected {names_of(expected)}",
    )


@check("dm_operations")
def profile_delivered(
    pushed_ids: Collection[str],
    site_ids: Collection[str],
    received: Mapping[str, Sequence[Mapping[str, Any]]],
    version: str,
) -> None:
    """The push targets exactly the site's devices, and each received the profile once, with
    its version (`received`: device ID -> messages on its command channel)."""
    selected(site_ids, "devices at the site")
    require(
        sorted(pushed_ids) == sorted(site_ids),
        f"the push targeted {names_of(pushed_ids)}, the site holds {names_of(site_ids)}",
    )
    missing = [d for d in site_ids if len(received.get(d, ())) != 1]
    require(not missing, f"devices that did not receive the profile exactly once: {missing}")
    versions = {str(received[d][0].get("payload", {}).get("version")) for d in site_ids}
    require(versions == {version}, f"the devices received versions {names_of(versions)}")


@check("dm_operations")
def profile_acknowledged(acks: Mapping[str, Mapping[str, Any] | None], version: str) -> None:
    """Each device at the site acknowledged its profile command itself, as applied, with the
    version (`acks`: device ID -> the result of its acknowledgement, None if none came)."""
    selected(acks, "acknowledgements of devices at the site")
    silent = sorted(d for d, result in acks.items() if result is None)
    require(not silent, f"devices that did not acknowledge the profile: {silent}")
    refused = sorted(
        d for d, result in acks.items() if result and result.get("applied") is not True
    )
    require(not refused, f"devices that did not apply the profile: {refused}")
    versions = {str(result.get("version")) for result in acks.values() if result}
    require(versions == {version}, f"the devices acknowledged versions {names_of(versions)}")


@check("dm_operations")
def nothing_delivered(received: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Devices outside the push's target receive no command (`received`: device ID -> messages)."""
    selected(received, "devices outside the target")
    got = {d: [m.get("kind") for m in msgs] for d, msgs in received.items() if msgs}
    require(not got, f"devices outside the target received commands: {got}")


@check("dm_operations")
def no_drift(
    drift_rows: Sequence[Mapping[str, Any]], site_ids: Collection[str], listed_ids: Collection[str]
) -> None:
    """No device of the site drifts from its profile, and every one is still listed."""
    ids = set(selected(site_ids, "devices at the site"))
    drifting = [r for r in drift_rows if r.get("device_id") in ids]
    require(not drifting, f"devices drift from the profile: {drifting[:5]}")
    require(
        set(listed_ids) == ids,
        f"the device list misses {names_of(ids - set(listed_ids))} of the site",
    )


@check("dm_operations")
def diagnosis_fields_only(bundle: Mapping[str, Any]) -> None:
    """A downloaded diagnostics bundle holds exactly the diagnosis fields of DM-09."""
    selected(bundle, "fields in the bundle")
    extra = set(bundle) - DIAGNOSIS_FIELDS
    missing = DIAGNOSIS_FIELDS - set(bundle)
    require(not extra, f"the bundle holds fields outside remote diagnosis: {names_of(extra)}")
    require(not missing, f"the bundle lacks {names_of(missing)}")


@check("dm_operations")
def bundles_uploaded_by_agents(
    requested: Mapping[str, Any], bundles: Mapping[str, Mapping[str, Any] | None]
) -> None:
    """Each device asked for diagnostics uploaded a bundle of its own by itself: the bundle
    names that device, holds only the diagnosis fields, and its log is the agent's, telling of
    the very command it carried out (`requested`: device ID -> the diagnostics command ID;
    `bundles`: device ID -> the bundle the administrator downloaded, None when none came)."""
    selected(requested, "devices asked for diagnostics")
    absent = sorted(d for d in requested if bundles.get(d) is None)
    require(not absent, f"devices that uploaded no bundle: {absent}")
    for device_id, command_id in requested.items():
        bundle = bundles[device_id] or {}
        require(
            bundle.get("device_id") == device_id,
            f"the bundle for {device_id} names {bundle.get('device_id')!r}",
        )
        diagnosis_fields_only(bundle)
        log = "".join(str(text) for text in (bundle.get("logs") or {}).values())
        require(
            f"diagnostics {command_id}: uploading the log" in log,
            f"the log in {device_id}'s bundle is not its agent's account of command {command_id}",
        )


@check("dm_operations")
def telemetry_kept(stored: int, now: int, days: int, retention_days: int) -> None:
    """Telemetry younger than the retention period is still stored after the retention job ran
    (`stored`: readings before, `now`: readings after, `days`: their age)."""
    counted(stored, "telemetry readings")
    require(days < retention_days, f"{days} days is not within the {retention_days}-day period")
    require(now == stored, f"{stored - now} of {stored} readings aged {days} days were purged")


@check("dm_operations")
def telemetry_purged(stored: int, now: int, days: int, retention_days: int) -> None:
    """Telemetry older than the retention period is gone once the retention job ran."""
    counted(stored, "telemetry readings")
    require(days > retention_days, f"{days} days is not past the {retention_days}-day period")
    require(now == 0, f"{now} of {stored} readings aged {days} days are still stored")
