"""`entsoe` (or `entsoe:EIC`): ENTSO-E Transparency Platform, actual generation per production type.

Request (RESTful API user guide, https://transparency.entsoe.eu/content/static_content/Static%20content/web%20api/Guide.html):
  GET /api?securityToken=T&documentType=A75&processType=A16&in_Domain=EIC&periodStart=yyyyMMddHHmm&periodEnd=...
answers a GL_MarketDocument: TimeSeries, each with MktPSRType/psrType (B01..B25), a Period
(timeInterval start/end, resolution PT15M/PT30M/PT60M) and Points (position, quantity in MW).
No data is an Acknowledgement_MarketDocument ("No matching data found"); a bad token is HTTP 401.
Rate limit: 400 requests per minute per token and IP.

ENTSO-E publishes generation, not emissions: the mix is the generation per type in the interval,
and the intensity is that mix times the life-cycle factor of each source (IPCC AR5 medians in
factors/data/source_factors.csv). Imports are not counted (a production-based intensity), and
pumped-storage and battery output are left out (stored energy, not generation).
The XML is parsed with the standard library: no third-party client needed.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import ClassVar

from wattlens.errors import ConfigError
from wattlens.factors.records import ENERGY_SOURCES, Zone
from wattlens.grid.http import NO_DATA, FeedError
from wattlens.grid.live import HOUR, LiveFeed, Sample, floor, iso, max_age_s, normalise, parse_time

# PSR types (ENTSO-E code list) -> wattlens sources; None: storage, not generation.
PSR = {
    "B01": "bioenergy",  # Biomass
    "B02": "coal",  # Fossil Brown coal/Lignite
    "B03": "coal",  # Fossil Coal-derived gas
    "B04": "gas",  # Fossil Gas
    "B05": "coal",  # Fossil Hard coal
    "B06": "oil",  # Fossil Oil
    "B07": "oil",  # Fossil Oil shale
    "B08": "coal",  # Fossil Peat (closest factor)
    "B09": "other",  # Geothermal
    "B10": None,  # Hydro Pumped Storage
    "B11": "hydro",  # Hydro Run-of-river and poundage
    "B12": "hydro",  # Hydro Water Reservoir
    "B13": "other",  # Marine
    "B14": "nuclear",  # Nuclear
    "B15": "other",  # Other renewable
    "B16": "solar",  # Solar
    "B17": "bioenergy",  # Waste (the biomass factor: part of waste is fossil)
    "B18": "wind",  # Wind Offshore
    "B19": "wind",  # Wind Onshore
    "B20": "other",  # Other
    "B25": None,  # Energy storage
}
# Bidding zones (EIC codes) of the wattlens zones, from entsoe-py's mappings (Area enum, MIT).
EIC = {
    "AT": "10YAT-APG------L",
    "BE": "10YBE----------2",
    "BG": "10YCA-BULGARIA-R",
    "CH": "10YCH-SWISSGRIDZ",
    "CZ": "10YCZ-CEPS-----N",
    "DE": "10Y1001A1001A82H",  # DE-LU bidding zone
    "DK": "10Y1001A1001A65H",
    "EE": "10Y1001A1001A39I",
    "ES": "10YES-REE------0",
    "FI": "10YFI-1--------U",
    "FR": "10YFR-RTE------C",
    "GR": "10YGR-HTSO-----Y",
    "HR": "10YHR-HEP------M",
    "HU": "10YHU-MAVIR----U",
    "IE": "10Y1001A1001A59C",  # the single electricity market (IE and NI)
    "IT": "10YIT-GRTN-----B",
    "LT": "10YLT-1001A0008Q",
    "LV": "10YLV-1001A00074",
    "NL": "10YNL----------L",
    "NO": "10YNO-0--------C",
    "PL": "10YPL-AREA-----S",
    "PT": "10YPT-REN------W",
    "RO": "10YRO-TEL------P",
    "SE": "10YSE-1--------K",
    "SI": "10YSI-ELES-----O",
    "SK": "10YSK-SEPS-----K",
}
RESOLUTIONS = {"PT15M": 15, "PT30M": 30, "PT60M": 60}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(el: ET.Element, path: str) -> ET.Element | None:
    """A descendant by local names (a/b/c), whatever the document's namespace version."""
    cur: ET.Element | None = el
    for part in path.split("/"):
        cur = next((c for c in cur if _local(c.tag) == part), None) if cur is not None else None
    return cur


def generation_mw(xml_text: str, at: dt.datetime) -> tuple[dict[str, float], dt.datetime, dt.timedelta]:
    """MW per wattlens source in the interval that holds `at`, with that interval's start and length."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        raise FeedError(NO_DATA, "entsoe: the answer is not XML") from None
    if _local(root.tag) == "Acknowledgement_MarketDocument":
        reason = _find(root, "Reason/text")
        raise FeedError(NO_DATA, f"entsoe: {reason.text if reason is not None else 'no data'}")
    mw: dict[str, float] = {}
    slot: tuple[dt.datetime, dt.timedelta] | None = None
    for ts in (c for c in root if _local(c.tag) == "TimeSeries"):
        if _find(ts, "outBiddingZone_Domain.mRID") is not None:
            continue  # consumption (pumping), not generation
        psr = _find(ts, "MktPSRType/psrType")
        source = PSR.get(psr.text or "") if psr is not None else None
        for period in (c for c in ts if _local(c.tag) == "Period"):
            start_el, res_el = _find(period, "timeInterval/start"), _find(period, "resolution")
            if start_el is None or res_el is None or (res_el.text or "") not in RESOLUTIONS:
                continue
            start, step = parse_time(start_el.text or ""), dt.timedelta(minutes=RESOLUTIONS[res_el.text or ""])
            index = int((at - start) / step) + 1
            if index < 1:
                continue
            best: float | None = None
            for pt in (c for c in period if _local(c.tag) == "Point"):
                pos, qty = _find(pt, "position"), _find(pt, "quantity")
                if pos is None or qty is None:
                    continue
                # Curve type A03 omits repeated points: the last point at or before the index holds.
                if int(pos.text or 0) <= index:
                    best = float(qty.text or 0)
            end_el = _find(period, "timeInterval/end")
            if best is None or (end_el is not None and at >= parse_time(end_el.text or "")):
                continue
            if slot is None or step < slot[1]:  # mixed resolutions: the finest interval holds them all
                slot = (start + (index - 1) * step, step)
            if source is not None:
                mw[source] = mw.get(source, 0.0) + best
    if slot is None or not mw:
        raise FeedError(NO_DATA, f"entsoe: no generation for {iso(at)}")
    return mw, slot[0], slot[1]


def intensity_g_per_kwh(mix: dict[str, float]) -> float:
    from wattlens.factors import builtin

    factors = builtin().source_factors
    return sum(share * factors.get(s).carbon_g_per_kwh for s, share in mix.items() if s in ENERGY_SOURCES)


class EntsoeFeed(LiveFeed):
    name: str = "entsoe"
    title: ClassVar[str] = "ENTSO-E Transparency Platform A75 x IPCC AR5 factors"
    default_url: ClassVar[str] = "https://web-api.tp.entsoe.eu"
    token_vars: ClassVar[tuple[str, ...]] = ("WATTLENS_ENTSOE_TOKEN",)

    def check(self) -> None:
        if self.arg and len(self.arg) != 16:
            raise ConfigError(f"entsoe:EIC takes a 16-character EIC area code like 10YFR-RTE------C, got {self.arg!r}")
        super().check()

    def code_for(self, zone: Zone) -> str:
        if self.arg:
            return self.arg
        return EIC.get(zone.zone, zone.zone)

    def sample(self, code: str, at: dt.datetime) -> Sample:
        if len(code) != 16:
            raise FeedError(NO_DATA, f"entsoe: no bidding zone known for {code}; use entsoe:EIC")
        hour = floor(at, HOUR)
        params = {
            "securityToken": self.secrets()[0],
            "documentType": "A75",
            "processType": "A16",
            "in_Domain": code,
            "periodStart": hour.strftime("%Y%m%d%H%M"),
            "periodEnd": (hour + HOUR).strftime("%Y%m%d%H%M"),
        }
        body = self.client().get(
            "/api", params, max_age_s=max_age_s(hour + HOUR, dt.datetime.now(dt.UTC)), secret_params=("securityToken",)
        )
        mw, start, step = generation_mw(body, at)
        mix = normalise(mw)
        if mix is None:
            raise FeedError(NO_DATA, f"entsoe: no generation for {iso(at)}")
        return Sample(start, step, intensity_g_per_kwh(mix), mix, None, "life-cycle")
