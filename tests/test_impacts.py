"""impacts: worked examples computed by hand, and the invariants of the receipt."""

from __future__ import annotations

import math

import pytest

from wattlens.context import Context, Place
from wattlens.errors import InputError
from wattlens.factors import FactorSet
from wattlens.impacts import EmbodiedShare, Site, embodied_g, footprint, resolve_site
from wattlens.receipt import LLMRequest, estimate_footprint
from wattlens.units import Interval

E = Interval(1.0, 2.0, 4.0)


def site_at(factors: FactorSet, **place: object) -> Site:
    return resolve_site(Context(Place(**place), factors=factors))  # type: ignore[arg-type]


def approx_iv(iv: Interval, low: float, mid: float, high: float) -> None:
    assert (iv.low, iv.mid, iv.high) == pytest.approx((low, mid, high), rel=1e-9)


def test_worked_example_france_on_aws(factors: FactorSet) -> None:
    site = site_at(factors, zone="FR", facility="aws")
    fp = footprint(E, site, method="measured", boundary=["accelerator", "facility"], factors_version="t")
    # By hand: AWS PUE 1.12/1.15/1.18, WUE 0.12/0.15/0.18 L/kWh; France 56.039 gCO2e/kWh, 3.6737 L/kWh off-site.
    # The energy (1/2/4 Wh) and the PUE or WUE are independent: mids multiply, log spreads add in quadrature.
    fac = (
        2.30 * math.exp(-math.hypot(math.log(2 / 1), math.log(1.15 / 1.12))),
        2.30,
        2.30 * math.exp(math.hypot(math.log(4 / 2), math.log(1.18 / 1.15))),
    )
    approx_iv(fp.facility_wh, *fac)
    approx_iv(fp.carbon_location_g, *(x * 0.056039 for x in fac))
    assert fp.carbon_location_g.mid == pytest.approx(0.1288897, rel=1e-6)
    approx_iv(
        fp.water_onsite_ml,
        0.30 * math.exp(-math.hypot(math.log(2), math.log(0.15 / 0.12))),
        0.30,
        0.30 * math.exp(math.hypot(math.log(2), math.log(0.18 / 0.15))),
    )
    approx_iv(fp.water_offsite_ml, *(x * 3.6737 for x in fac))
    # Narrower than bound by bound (both at their extremes at once), wider than the energy's own spread.
    both_extreme = E * site.pue
    assert both_extreme.low < fp.facility_wh.low < E.low * site.pue.mid
    assert E.high * site.pue.mid < fp.facility_wh.high < both_extreme.high
    assert fp.carbon_market_g == fp.carbon_location_g
    assert "market-equals-location" in fp.warnings
    assert fp.grid.zone == "FR" and fp.grid.mix["nuclear"] > 0.6


@pytest.mark.parametrize("zone", ["FR", "PL", "US-CA", "CA-QC", "WORLD", "IN", "BR"])
def test_carbon_and_water_identities_hold_for_any_zone(factors: FactorSet, zone: str) -> None:
    site = site_at(factors, zone=zone)
    fp = footprint(E, site, method="estimated", boundary=["accelerator", "host", "facility"], factors_version="t")
    z = factors.zones.get(zone)
    for part in ("low", "mid", "high"):
        fac = getattr(fp.facility_wh, part)
        assert getattr(fp.carbon_location_g, part) == pytest.approx(fac * z.intensity_g_per_kwh / 1000)
        onsite = getattr(E.times_independent(site.wue_l_per_kwh), part)
        offsite = fac * z.water_offsite_l_per_kwh
        assert getattr(fp.water_ml, part) == pytest.approx(onsite + offsite)


def test_france_beats_poland(factors: FactorSet) -> None:
    req = LLMRequest(model="gpt-4o-mini", input_tokens=800, output_tokens=400)
    fr = estimate_footprint(req, Place(zone="FR"), factors=factors)
    pl = estimate_footprint(req, Place(zone="PL"), factors=factors)
    assert fr.energy_wh == pl.energy_wh
    assert fr.carbon_location_g.mid < pl.carbon_location_g.mid
    assert fr.carbon_location_g.high < pl.carbon_location_g.high
    assert fr.grid.mix["nuclear"] > pl.grid.mix["nuclear"]


def test_market_based_instruments(factors: FactorSet) -> None:
    loc = footprint(E, site_at(factors, zone="PL"), method="measured", boundary=["facility"], factors_version="t")
    share = site_at(factors, zone="PL", renewable_share=0.8)
    fp = footprint(E, share, method="measured", boundary=["facility"], factors_version="t")
    assert fp.carbon_market_g.mid == pytest.approx(0.2 * loc.carbon_location_g.mid)
    assert "market-from-renewable-share" in fp.warnings
    contract = site_at(factors, zone="PL", market_g_per_kwh=30.0)
    fc = footprint(E, contract, method="measured", boundary=["facility"], factors_version="t")
    assert fc.carbon_market_g.mid == pytest.approx(fc.facility_wh.mid * 0.030)
    assert fc.carbon_location_g == loc.carbon_location_g


def test_gcp_region_uses_its_own_intensity_and_cfe(factors: FactorSet) -> None:
    site = site_at(factors, region="europe-west9")
    region = factors.cloud_regions.get("europe-west9")
    assert site.zone.zone == "FR" and site.intensity_g_per_kwh == region.intensity_g_per_kwh
    assert site.facility == "google" and "market-from-provider-cfe" in site.warnings
    fp = footprint(E, site, method="measured", boundary=["facility"], factors_version="t")
    assert region.cfe_share is not None
    assert fp.carbon_market_g.mid == pytest.approx(fp.carbon_location_g.mid * (1 - region.cfe_share))


def test_no_zone_means_world_average_said_out_loud(factors: FactorSet) -> None:
    site = site_at(factors)
    assert site.zone.zone == "WORLD" and "zone-unknown-world-average" in site.warnings


def test_embodied_by_hand(factors: FactorSet) -> None:
    h100 = factors.hardware.get("H100")
    g = embodied_g([EmbodiedShare(h100, 1.0, Interval.point(3600.0))])
    year = 365.25 * 24 * 3600
    # 164 kg over 5 years, one hour: 164000 * 3600 / (5 * year) = 3.7416 g
    assert g.mid == pytest.approx(164_000 * 3600 / (5 * year), rel=1e-3)
    assert g.low == pytest.approx(131_000 * 3600 / (6 * year), rel=1e-3)
    assert g.high == pytest.approx(246_000 * 3600 / (4 * year), rel=1e-3)


def test_boundary_without_facility_adds_no_pue(factors: FactorSet) -> None:
    fp = footprint(E, site_at(factors, zone="FR"), method="measured", boundary=["accelerator"], factors_version="t")
    assert fp.facility_wh == fp.energy_wh and "boundary-excludes-facility" in fp.warnings


def test_bad_site_inputs(factors: FactorSet) -> None:
    with pytest.raises(InputError, match="PUE"):
        site_at(factors, pue=0.9)
    with pytest.raises(InputError, match="renewable"):
        site_at(factors, renewable_share=1.5)


def test_receipt_json_round_trip(factors: FactorSet) -> None:
    from wattlens.footprint import Footprint

    fp = estimate_footprint(LLMRequest(model="gpt-4o", input_tokens=100, output_tokens=50), Place(zone="DE"))
    d = fp.as_dict()
    assert set(d) >= {
        "energy_wh",
        "facility_wh",
        "carbon_g",
        "water_ml",
        "grid",
        "method",
        "boundary",
        "factors_version",
        "warnings",
        "model",
        "tokens",
    }
    back = Footprint.from_dict(d)
    assert back.as_dict() == d
    for iv in (fp.energy_wh, fp.facility_wh, fp.carbon_location_g, fp.embodied_g, fp.water_ml):
        assert iv.low <= iv.mid <= iv.high
