"""Grid feeds: the carbon intensity and generation mix of a zone, for a receipt.

A feed answers `reading(zone, region, at)`. The built-in `annual` feed reads the factor
tables (yearly averages, with a cloud region's own published intensity where there is one);
plugins add others through the `wattlens_grid_feeds` hook (wattlens.plugins), and the
configuration picks one by name (`[grid] feed = "..."`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from wattlens.factors.records import CloudRegion, Zone


@dataclass(frozen=True, slots=True)
class GridReading:
    """What powered the work: intensity (gCO2e/kWh) and source shares (summing to 1)."""

    zone: str
    year: int
    intensity_g_per_kwh: float
    mix: dict[str, float]
    warnings: tuple[str, ...] = ()


class GridFeed(Protocol):
    name: str

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        """The grid of `zone` (drawn by cloud `region` when one was named) at time `at` (None: unknown)."""
        ...


class AnnualFeed:
    """Yearly averages from the factor tables; a cloud region's own figure wins over its zone's."""

    name = "annual"

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        warnings: list[str] = []
        intensity = zone.intensity_g_per_kwh
        if region is not None and region.intensity_g_per_kwh is not None:
            intensity = region.intensity_g_per_kwh
        elif "direct combustion" in zone.intensity_basis:
            warnings.append("intensity-direct-combustion")
        if zone.mix_basis.startswith("parent"):
            warnings.append("mix-from-parent-zone")
        return GridReading(zone.zone, zone.year, intensity, zone.mix, tuple(warnings))


__all__ = ["AnnualFeed", "GridFeed", "GridReading"]
