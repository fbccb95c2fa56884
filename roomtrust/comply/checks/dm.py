"""Checks of features/dm.feature (DM-01, 02, 04, 07, 08, 09, 10) over evidence from a DM region:
the devices it lists, its table counts, how it answered a foreign certificate."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from roomtrust.comply.checks import check, names_of, require, selected
from services.dm.domain.catalogue import MANAGED_MODELS


@check("dm")
def every_model_enrolled(
    enrolled_models: Collection[str], catalogue: Collection[str] = MANAGED_MODELS
) -> None:
    """Each managed model has an enrolled device, and no other model does (DM-01)."""
    selected(enrolled_models, "enrolled devices")
    missing = set(catalogue) - set(enrolled_models)
    extra = set(enrolled_models) - set(catalogue)
    require(not missing, f"no enrolled device of {names_of(missing)}")
    require(not extra, f"devices of models outside the catalogue are enrolled: {names_of(extra)}")


@check("dm")
def no_certificate_issued(has_certificate: bool, who: str) -> None:
    """A device the region must not enroll holds no certificate afterwards (DM-02, DM-04)."""
    require(not has_certificate, f"{who} was issued a certificate")


@check("dm")
def no_table_gained_a_row(before: Mapping[str, int], after: Mapping[str, int]) -> None:
    """The region's store has exactly the rows it had before the refused request."""
    selected(before, "tables counted before the request")
    selected(after, "tables counted after the request")
    grown = {t: (before.get(t, 0), n) for t, n in after.items() if n > before.get(t, 0)}
    require(not grown, f"tables gained rows (before, after): {grown}")
    require(
        set(before) == set(after),
        f"the set of tables changed: {names_of(set(before) ^ set(after))}",
    )
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    require(not changed, f"row counts changed (before, after): {changed}")


@check("dm")
def refused_at_handshake(answered_status: int | None, region: str) -> None:
    """A certificate of another region gets no HTTP answer at all: the TLS handshake fails
    (`answered_status` is None when it did)."""
    require(
        answered_status is None,
        f"region {region} completed the handshake with a foreign certificate and answered "
        f"HTTP {answered_status}",
    )


@check("dm")
def listed_with_firmware(rows: Sequence[Mapping[str, Any]], device_id: str, version: str) -> None:
    """The region's device list shows the device with the firmware version it reported."""
    mine = [r for r in selected(rows, "listed devices") if r.get("device_id") == device_id]
    require(mine, f"device {device_id} is not in the device list")
    shown = mine[0].get("firmware_version")
    require(shown == version, f"the device list shows firmware {shown!r}, not {version!r}")
