"""A scenario's fleets as compact arrays: one row per device, ids into small tables of sites."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices_virtual.models import CATALOGUE
from devices_virtual.scenario import Scenario, Site


@dataclass(frozen=True)
class SiteRef:
    fleet: str
    dm_region: str
    meeting_region: str | None
    site: Site


@dataclass(frozen=True)
class FleetArrays:
    sites: list[SiteRef]
    models: list[str]
    site: np.ndarray  # int32 index into sites
    model: np.ndarray  # int16 index into models
    deployed: np.ndarray  # bool

    @property
    def size(self) -> int:
        return len(self.site)

    def devices_per_site(self) -> np.ndarray:
        return np.bincount(self.site[self.deployed], minlength=len(self.sites))


def expand(scenario: Scenario) -> FleetArrays:
    """Every device of every fleet; a fleet's devices go round its sites in turn, as in a fleet
    run, and its `undeployed` devices come last."""
    sites: list[SiteRef] = []
    models = list(CATALOGUE)
    site_parts, model_parts, deployed_parts = [], [], []
    for fleet in scenario.fleets:
        first = len(sites)
        sites += [
            SiteRef(fleet.name, fleet.dm_region, fleet.meeting_region, s) for s in fleet.sites
        ]
        counts = [(models.index(name), n) for name, n in fleet.models.items()]
        model_ids = np.concatenate(
            [np.full(n, m, dtype=np.int16) for m, n in counts]
            + [np.full(fleet.undeployed, counts[0][0], dtype=np.int16)]
        )
        n = len(model_ids)
        site_parts.append(first + (np.arange(n, dtype=np.int32) % len(fleet.sites)))
        model_parts.append(model_ids)
        deployed_parts.append(np.arange(n) < fleet.deployed_count)
    return FleetArrays(
        sites,
        models,
        np.concatenate(site_parts).astype(np.int32),
        np.concatenate(model_parts),
        np.concatenate(deployed_parts),
    )
