"""`ukci` (or `ukci:REGIONID`): the GB Carbon Intensity API of NESO, half-hourly, no key.

Endpoints (https://carbon-intensity.github.io/api-definitions/, base https://api.carbonintensity.org.uk):
  /intensity/{from}/{to}          national: {"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}
  /generation/{from}/{to}         national mix: {"data": [{"from", "to", "generationmix": [{"fuel", "perc"}]}]}
  /regional/intensity/{from}/{to}/regionid/{id}   one of the 17 DNO regions (1-17), forecast intensity and mix
  /intensity/{from}/fw48h         the national forecast for the next 48 hours
Times are written 2026-01-15T03:00Z. The actual value is used where published, else the
forecast. NESO's factors count operational (direct) emissions, not the life cycle, and the
feed answers for the zone GB only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from wattlens.errors import ConfigError
from wattlens.factors.records import Zone
from wattlens.grid.http import NO_DATA, FeedError
from wattlens.grid.live import FRESH_S, LiveFeed, Sample, floor, iso, max_age_s, normalise, parse_time

HALF_HOUR = dt.timedelta(minutes=30)
FUELS = {
    "biomass": "bioenergy",
    "coal": "coal",
    "imports": "other",
    "gas": "gas",
    "nuclear": "nuclear",
    "other": "other",
    "hydro": "hydro",
    "solar": "solar",
    "wind": "wind",
}


def t_api(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def mix_of(generationmix: Any) -> dict[str, float] | None:
    mw: dict[str, float] = {}
    for g in generationmix or []:
        if isinstance(g, dict) and g.get("fuel") in FUELS and isinstance(g.get("perc"), int | float):
            mw[FUELS[g["fuel"]]] = mw.get(FUELS[g["fuel"]], 0.0) + float(g["perc"])
    return normalise(mw)


def periods(body: Any) -> list[dict[str, Any]]:
    """The half-hours of an answer, national ({"data": [...]}) or regional ({"data": {"data": [...]}} or a list of one)."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data = data.get("data")
    elif isinstance(data, list) and data and isinstance(data[0], dict) and "regionid" in data[0]:
        data = data[0].get("data")
    return [p for p in data or [] if isinstance(p, dict)]


class UkCarbonIntensityFeed(LiveFeed):
    name: str = "ukci"
    title: ClassVar[str] = "NESO Carbon Intensity API"
    default_url: ClassVar[str] = "https://api.carbonintensity.org.uk"
    token_vars: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        if self.arg and not (self.arg.isdigit() and 1 <= int(self.arg) <= 17):
            raise ConfigError(f"ukci:REGIONID takes a region id from 1 to 17, got {self.arg!r}")

    def code_for(self, zone: Zone) -> str:
        return zone.zone + (f" region {self.arg}" if self.arg else "")

    def sample(self, code: str, at: dt.datetime) -> Sample:
        if code.split(" ")[0] != "GB":
            raise FeedError(NO_DATA, "ukci: the GB Carbon Intensity API covers the zone GB only")
        start = floor(at, HALF_HOUR)
        end = start + HALF_HOUR
        age = max_age_s(end, dt.datetime.now(dt.UTC))
        c = self.client()
        span = f"{t_api(start)}/{t_api(end)}"
        if self.arg:
            ps = periods(c.get_json(f"/regional/intensity/{span}/regionid/{self.arg}", max_age_s=age))
            p = self._at(ps, at)
            return Sample(start, HALF_HOUR, self._value(p, at), mix_of(p.get("generationmix")), None, "direct combustion")
        p = self._at(periods(c.get_json(f"/intensity/{span}", max_age_s=age)), at)
        value = self._value(p, at)
        try:
            mix = mix_of(self._at(periods(c.get_json(f"/generation/{span}", max_age_s=age)), at).get("generationmix"))
        except FeedError:
            mix = None
        return Sample(start, HALF_HOUR, value, mix, None, "direct combustion")

    @staticmethod
    def _at(ps: list[dict[str, Any]], at: dt.datetime) -> dict[str, Any]:
        for p in ps:
            try:
                if parse_time(str(p["from"])) <= at < parse_time(str(p["to"])):
                    return p
            except (KeyError, ValueError):
                continue
        raise FeedError(NO_DATA, f"ukci: no half-hour holds {iso(at)}")

    @staticmethod
    def _value(p: dict[str, Any], at: dt.datetime) -> float:
        i = p.get("intensity") or {}
        v = i.get("actual") if isinstance(i.get("actual"), int | float) else i.get("forecast")
        if not isinstance(v, int | float):
            raise FeedError(NO_DATA, f"ukci: no intensity for {iso(at)}")
        return float(v)

    def forecast(self, zone: Zone, start: dt.datetime, end: dt.datetime) -> list[Sample]:
        if zone.zone != "GB":
            raise FeedError(NO_DATA, "ukci: the GB Carbon Intensity API covers the zone GB only")
        path = f"/intensity/{t_api(floor(start, HALF_HOUR))}/fw48h"
        if self.arg:
            path = f"/regional/intensity/{t_api(floor(start, HALF_HOUR))}/fw48h/regionid/{self.arg}"
        out = []
        for p in periods(self.client().get_json(path, max_age_s=FRESH_S)):
            f = (p.get("intensity") or {}).get("forecast")
            t = parse_time(str(p.get("from")))
            if isinstance(f, int | float) and t < end:
                out.append(Sample(t, HALF_HOUR, float(f), mix_of(p.get("generationmix")), None, "direct combustion"))
        return out
