"""What a scenario must show in the compliance report itself, beyond its evidence files.

A scenario listed here passes only when it showed each of its labels (`Evidence.show`, kept in the
scenario's `shown.json`); otherwise `roomtrust comply` fails it with the missing labels as its
reason, so a report can never hold a PASS for these claims without the figures an auditor reads:

- DM-13: the configuration push as the device agents acknowledged it, as the region stored it;
- DM-05: the diagnostics bundles the device agents uploaded, as the administrator downloaded them;
- MT-16: the spectrum sox measured of the downloaded recording, at both speakers' tones.

Scenarios are named by their text in features/*.feature (tests/comply check that each exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CONFIG_ACKS = "configuration acknowledged by the device agents"
DIAGNOSTICS_BUNDLES = "diagnostics bundles uploaded by the device agents"
RECORDING_SPECTRUM = "recording spectrum measured by sox"

MUST_SHOW: Mapping[str, tuple[str, ...]] = {
    "A bulk push to one site reaches every device there and no other": (CONFIG_ACKS,),
    "Room systems asked for diagnostics upload their own bundles": (DIAGNOSTICS_BUNDLES,),
    "A recorded three-party call holds both speakers' tones and stays in its region": (
        RECORDING_SPECTRUM,
    ),
}


def missing(scenario: str, shown: Iterable[Mapping[str, Any]]) -> list[str]:
    """The labels `scenario` must show and did not."""
    labels = {entry.get("label") for entry in shown}
    return [label for label in MUST_SHOW.get(scenario, ()) if label not in labels]
