"""Grid feeds: the carbon intensity and generation mix of a zone at a time, for a receipt.

A feed answers `reading(zone, region, at)`. The built-in `annual` feed reads the factor
tables (yearly averages, with a cloud region's own published intensity where there is one);
`csv:FILE` reads a user's time series (wattlens.grid.csvfeed, docs/grid.md). Plugins add others
through the `wattlens_grid_feeds` hook (wattlens.plugins), and the configuration picks one by
name (`[grid] feed = "..."`, `--grid`, WATTLENS_GRID_FEED).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from wattlens.factors.records import CloudRegion, Zone

# Carbon-free generation as Google's 24/7 CFE counts it (wind, solar, hydro, nuclear, geothermal);
# wattlens' "other" is other renewables, mostly geothermal. Bioenergy is not counted.
CARBON_FREE = ("nuclear", "hydro", "wind", "solar", "other")


@dataclass(frozen=True, slots=True)
class GridReading:
    """What powered the work: intensity (gCO2e/kWh) and source shares (summing to 1).

    resolution: "annual", "hourly", "5-minute"...; basis: "life-cycle" or "direct combustion";
    at: the start of the interval used (ISO 8601), None for a yearly average;
    marginal_g_per_kwh: the marginal intensity where the feed gives one.
    """

    zone: str
    year: int
    intensity_g_per_kwh: float
    mix: dict[str, float]
    warnings: tuple[str, ...] = ()
    resolution: str = "annual"
    basis: str = "life-cycle"
    source: str = ""
    at: str | None = None
    marginal_g_per_kwh: float | None = None


class GridFeed(Protocol):
    name: str

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        """The grid of `zone` (drawn by cloud `region` when one was named) at time `at` (None: unknown)."""
        ...


def _first(text: str) -> str:
    """The citation part of a factor row's source (before the notes on water and mix)."""
    return text.split(";")[0].strip()


class AnnualFeed:
    """Yearly averages from the factor tables; a cloud region's own figure wins over its zone's."""

    name = "annual"

    def __init__(self) -> None:
        # Readings by the rows' identity: the same yearly figure for every request, built once.
        self._memo: dict[tuple[int, int], tuple[Zone, CloudRegion | None, GridReading]] = {}

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        key = (id(zone), id(region))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is zone and hit[1] is region:
            return hit[2]
        r = self._reading(zone, region)
        if len(self._memo) >= 1024:
            self._memo.clear()
        self._memo[key] = (zone, region, r)
        return r

    def _reading(self, zone: Zone, region: CloudRegion | None) -> GridReading:
        warnings: list[str] = []
        intensity = zone.intensity_g_per_kwh
        basis = "direct combustion" if zone.intensity_basis.startswith("direct") else "life-cycle"
        source = _first(zone.source)
        if region is not None and region.intensity_g_per_kwh is not None:
            intensity, basis, source = region.intensity_g_per_kwh, "life-cycle", _first(region.source)
        elif basis == "direct combustion":
            warnings.append("intensity-direct-combustion")
        if zone.mix_basis.startswith("parent"):
            warnings.append("mix-from-parent-zone")
        return GridReading(zone.zone, zone.year, intensity, zone.mix, tuple(warnings), "annual", basis, source)


__all__ = ["CARBON_FREE", "AnnualFeed", "GridFeed", "GridReading"]
