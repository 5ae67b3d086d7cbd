"""Pure functions: IT energy plus where and on what it ran -> a Footprint.

Formulas (docs/methodology.md gives each with its sources):
  facility_wh = energy_wh x PUE                      (when "facility" is in the boundary)
  carbon_location_g = facility_wh x intensity_g_per_kwh / 1000
  carbon_marginal_g = facility_wh x marginal_g_per_kwh / 1000 (where the grid feed gives one)
  carbon_market_g = facility_wh x market_g_per_kwh / 1000 (contract), or
                    carbon_location_g x (1 - renewable_share), else = location
  embodied_g = sum(embodied_kg x 1000 x count x occupied_s / (lifetime_years x s_per_year))
  water_onsite_ml = energy_wh x WUE_l_per_kwh        (1 L/kWh = 1 mL/Wh)
  water_offsite_ml = facility_wh x water_offsite_l_per_kwh
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattlens.context import Context
from wattlens.errors import InputError
from wattlens.factors.records import CloudRegion, Facility, Hardware, Zone
from wattlens.footprint import Footprint, Grid, Method, Tokens
from wattlens.grid import GridReading
from wattlens.units import S_PER_YEAR, WH_PER_KWH, Interval

REGION_FACILITY = {"gcp": "google", "aws": "aws", "azure": "microsoft"}


@dataclass(frozen=True, slots=True)
class Site:
    """Where energy was used, resolved: the grid reading, the facility and any market-based instrument."""

    zone: Zone
    grid: GridReading
    pue: Interval
    wue_l_per_kwh: Interval
    market_g_per_kwh: float | None = None
    renewable_share: float | None = None
    warnings: tuple[str, ...] = ()
    region: str | None = None
    facility: str = "default"

    @property
    def intensity_g_per_kwh(self) -> float:
        return self.grid.intensity_g_per_kwh


@dataclass(frozen=True, slots=True)
class EmbodiedShare:
    """Hardware occupied by the work: count units for occupied_s seconds each."""

    hardware: Hardware
    count: float
    occupied_s: Interval


@dataclass(frozen=True, slots=True)
class SiteBasis:
    """What a site is before its grid reading: the same for every request at a place (cacheable)."""

    zone: Zone
    region_row: CloudRegion | None  # drawn by the grid feed only when the zone was not named outright
    pue: Interval
    wue_l_per_kwh: Interval
    market_g_per_kwh: float | None
    renewable_share: float | None
    zone_warnings: tuple[str, ...]  # before the reading's own warnings
    other_warnings: tuple[str, ...]  # after them
    region: str | None
    facility: str

    def at(self, ctx: Context, at: dt.datetime | None) -> Site:
        """The site with the context's grid reading at time `at`."""
        reading = ctx.grid.reading(self.zone, self.region_row, at)
        return Site(
            zone=self.zone,
            grid=reading,
            pue=self.pue,
            wue_l_per_kwh=self.wue_l_per_kwh,
            market_g_per_kwh=self.market_g_per_kwh,
            renewable_share=self.renewable_share,
            warnings=self.zone_warnings + reading.warnings + self.other_warnings
            if reading.warnings
            else self.zone_warnings + self.other_warnings,
            region=self.region,
            facility=self.facility,
        )


def resolve_site(
    ctx: Context,
    *,
    default_zone: str | None = None,
    default_facility: str | None = None,
    at: dt.datetime | None = None,
) -> Site:
    """Pick the zone, the grid reading (from the context's feed) and the facility; say in warnings what was assumed."""
    return site_basis(ctx, default_zone=default_zone, default_facility=default_facility).at(ctx, at)


def site_basis(ctx: Context, *, default_zone: str | None = None, default_facility: str | None = None) -> SiteBasis:
    """The zone, facility and market instrument of the context's place (everything but the grid reading)."""
    factors, place = ctx.factors, ctx.place
    zone, region = place.zone, place.region
    pue, wue_l_per_kwh = place.pue, place.wue_l_per_kwh
    market_g_per_kwh, renewable_share = place.market_g_per_kwh, place.renewable_share
    warnings: list[str] = []
    region_row = factors.cloud_regions.get(region) if region else None
    if zone:
        z = factors.zones.get(zone)
    elif region_row is not None:
        z = factors.zones.get(region_row.zone)
    elif default_zone:
        z = factors.zones.get(default_zone)
        warnings.append("zone-assumed-from-provider")
    else:
        z = factors.zones.get("WORLD")
        warnings.append("zone-unknown-world-average")
    zone_warnings = tuple(warnings)
    warnings = []
    if z.water_basis.startswith("derived"):
        warnings.append("water-derived-from-mix")
    fac_name = place.facility or (REGION_FACILITY.get(region_row.provider) if region_row else None) or default_facility
    fac: Facility = factors.facilities.get(fac_name or "default")
    if pue is not None and pue < 1.0:
        raise InputError(f"PUE must be at least 1.0, got {pue}")
    if wue_l_per_kwh is not None and wue_l_per_kwh < 0:
        raise InputError(f"WUE must not be negative, got {wue_l_per_kwh}")
    if renewable_share is not None and not 0.0 <= renewable_share <= 1.0:
        raise InputError(f"renewable share must be between 0 and 1, got {renewable_share}")
    if market_g_per_kwh is not None and market_g_per_kwh < 0:
        raise InputError(f"market-based factor must not be negative, got {market_g_per_kwh}")
    if market_g_per_kwh is None and renewable_share is None:
        if region_row is not None and region_row.cfe_share is not None and not zone:
            renewable_share = region_row.cfe_share
            warnings.append("market-from-provider-cfe")
        else:
            warnings.append("market-equals-location")
    elif market_g_per_kwh is None:
        warnings.append("market-from-renewable-share")
    return SiteBasis(
        zone=z,
        # A region's own published intensity applies only when the zone was not named outright.
        region_row=region_row if not zone else None,
        pue=Interval.point(pue) if pue is not None else fac.pue,
        wue_l_per_kwh=Interval.point(wue_l_per_kwh) if wue_l_per_kwh is not None else fac.wue_l_per_kwh,
        market_g_per_kwh=market_g_per_kwh,
        renewable_share=renewable_share,
        zone_warnings=zone_warnings,
        other_warnings=tuple(warnings),
        region=region_row.region if region_row else None,
        facility=fac.facility,
    )


def facility_energy_wh(energy_wh: Interval, pue: Interval) -> Interval:
    return energy_wh.times_independent(pue)  # the PUE's uncertainty is not the energy's


def carbon_g(energy_wh: Interval, intensity_g_per_kwh: float) -> Interval:
    return energy_wh * (intensity_g_per_kwh / WH_PER_KWH)


def market_carbon_g(facility_wh: Interval, site: Site) -> Interval:
    if site.market_g_per_kwh is not None:
        return carbon_g(facility_wh, site.market_g_per_kwh)
    if site.renewable_share is not None:
        return carbon_g(facility_wh, site.intensity_g_per_kwh * (1.0 - site.renewable_share))
    return carbon_g(facility_wh, site.intensity_g_per_kwh)


def embodied_g(shares: Sequence[EmbodiedShare]) -> Interval:
    # Bound by bound in floats (the same operations, in the same order, as Interval arithmetic):
    # a receipt has two shares, and building each intermediate Interval cost more than the sums.
    lo = mid = hi = 0.0
    for s in shares:
        kg, life, occ = s.hardware.embodied_kg, s.hardware.lifetime_years, s.occupied_s
        k = 1000.0 * s.count
        # Longest lifetime gives the low bound: the same emissions spread over more seconds.
        p_lo, p_mid, p_hi = (
            kg.low / (life.high * S_PER_YEAR),
            kg.mid / (life.mid * S_PER_YEAR),
            kg.high / (life.low * S_PER_YEAR),
        )
        if p_lo < 0 or occ.low < 0 or k < 0:
            return _embodied_signed(shares)
        lo, mid, hi = lo + p_lo * occ.low * k, mid + p_mid * occ.mid * k, hi + p_hi * occ.high * k
    return Interval(lo, mid, hi)


def _embodied_signed(shares: Sequence[EmbodiedShare]) -> Interval:
    """The general form (a negative factor in a user's table): Interval arithmetic handles the signs."""
    total = Interval.point(0.0)
    for s in shares:
        kg, life = s.hardware.embodied_kg, s.hardware.lifetime_years
        per_s = Interval(
            kg.low / (life.high * S_PER_YEAR), kg.mid / (life.mid * S_PER_YEAR), kg.high / (life.low * S_PER_YEAR)
        )
        total = total + per_s * s.occupied_s * (1000.0 * s.count)
    return total


def water_onsite_ml(energy_wh: Interval, wue_l_per_kwh: Interval) -> Interval:
    return energy_wh.times_independent(wue_l_per_kwh)  # L/kWh == mL/Wh


def water_offsite_ml(facility_wh: Interval, water_l_per_kwh: float) -> Interval:
    return facility_wh * water_l_per_kwh


def footprint(
    energy_wh: Interval,
    site: Site,
    *,
    method: Method,
    boundary: Sequence[str],
    factors_version: str,
    embodied: Sequence[EmbodiedShare] = (),
    model: str | None = None,
    tokens: Tokens | None = None,
    warnings: Sequence[str] = (),
    assumptions: dict[str, Any] | None = None,
    measurement: dict[str, Any] | None = None,
) -> Footprint:
    """The receipt for IT energy used at a site. Pure: no I/O, no clocks."""
    parts = [b for b in boundary if b not in ("facility", "embodied")]
    include_facility = "facility" in boundary
    fac_wh = facility_energy_wh(energy_wh, site.pue) if include_facility else energy_wh
    codes = list(warnings) + list(site.warnings)
    if not include_facility:
        codes.append("boundary-excludes-facility")
    if include_facility:
        parts.append("facility")
    if embodied:
        parts.append("embodied")
    g = site.grid
    marginal = carbon_g(fac_wh, g.marginal_g_per_kwh) if g.marginal_g_per_kwh is not None else None
    return Footprint(
        energy_wh=energy_wh,
        facility_wh=fac_wh,
        carbon_location_g=carbon_g(fac_wh, site.intensity_g_per_kwh),
        carbon_market_g=market_carbon_g(fac_wh, site),
        embodied_g=embodied_g(embodied),
        water_onsite_ml=water_onsite_ml(energy_wh, site.wue_l_per_kwh),
        water_offsite_ml=water_offsite_ml(fac_wh, site.zone.water_offsite_l_per_kwh),
        grid=Grid(
            g.zone, g.year, g.intensity_g_per_kwh, dict(g.mix), g.resolution, g.basis, g.source, g.at, g.marginal_g_per_kwh
        ),
        method=method,
        boundary=tuple(parts),
        factors_version=factors_version,
        model=model,
        tokens=tokens,
        warnings=tuple(dict.fromkeys(codes)),
        carbon_marginal_g=marginal,
        assumptions=assumptions,
        measurement=measurement,
    )
