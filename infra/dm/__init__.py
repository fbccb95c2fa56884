"""The device-management cloud on Azure: one `DmRegion` component per region (us, eu, au)."""

from infra.dm.region import DM_LOCATIONS, DmRegion, DmRegionArgs

__all__ = ["DM_LOCATIONS", "DmRegion", "DmRegionArgs"]
