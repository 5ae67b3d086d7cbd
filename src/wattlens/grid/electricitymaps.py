"""`electricitymaps`: Electricity Maps API v3, hourly carbon intensity and power breakdown.

Endpoints (https://portal.electricitymaps.com/docs/api, header `auth-token`):
  /v3/carbon-intensity/latest|history|past|forecast?zone=Z[&datetime=T]
  /v3/power-breakdown/latest|history|past?zone=Z[&datetime=T]
The current hour comes from `latest`, the last 24 hours from `history`, older hours from `past`
(cached for ever: a past hour does not change). The intensity is life-cycle unless the answer
says `emissionFactorType: direct`; the mix is the consumption breakdown (after imports).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from wattlens.factors.records import Zone
from wattlens.grid.http import NO_DATA, FeedError
from wattlens.grid.live import FRESH_S, HOUR, LiveFeed, Sample, floor, iso, max_age_s, normalise, parse_time

# Electricity Maps' source keys -> wattlens' sources (storage discharge and unknown go to other).
SOURCES = {
    "nuclear": "nuclear",
    "geothermal": "other",
    "biomass": "bioenergy",
    "coal": "coal",
    "wind": "wind",
    "solar": "solar",
    "hydro": "hydro",
    "gas": "gas",
    "oil": "oil",
    "unknown": "other",
    "hydro discharge": "hydro",
    "battery discharge": "other",
}


def mix_of(breakdown: Any) -> dict[str, float] | None:
    if not isinstance(breakdown, dict):
        return None
    mw: dict[str, float] = {}
    for key, value in breakdown.items():
        if isinstance(value, int | float) and key in SOURCES:
            mw[SOURCES[key]] = mw.get(SOURCES[key], 0.0) + float(value)
    return normalise(mw)


class ElectricityMapsFeed(LiveFeed):
    name: str = "electricitymaps"
    title: ClassVar[str] = "Electricity Maps API v3"
    default_url: ClassVar[str] = "https://api.electricitymap.org"
    token_vars: ClassVar[tuple[str, ...]] = ("WATTLENS_ELECTRICITYMAPS_TOKEN",)

    def _points(self, kind: str, code: str, hour: dt.datetime, now: dt.datetime) -> list[dict[str, Any]]:
        """The answers of /v3/{kind}/latest|history|past that may hold `hour`."""
        headers = {"auth-token": self.secrets()[0]}
        c = self.client()
        if hour + HOUR > now:
            body = c.get_json(f"/v3/{kind}/latest", {"zone": code}, headers=headers, max_age_s=FRESH_S)
            return [body] if isinstance(body, dict) else []
        if now - hour <= dt.timedelta(hours=24):
            body = c.get_json(f"/v3/{kind}/history", {"zone": code}, headers=headers, max_age_s=FRESH_S)
            history = body.get("history") if isinstance(body, dict) else None
            return [p for p in history or [] if isinstance(p, dict)]
        params = {"zone": code, "datetime": iso(hour)}
        body = c.get_json(f"/v3/{kind}/past", params, headers=headers, max_age_s=max_age_s(hour + HOUR, now))
        return [body] if isinstance(body, dict) else []

    @staticmethod
    def _at(points: list[dict[str, Any]], hour: dt.datetime) -> dict[str, Any] | None:
        for p in points:
            try:
                if floor(parse_time(str(p.get("datetime", ""))), HOUR) == hour:
                    return p
            except ValueError:
                continue
        return None

    def sample(self, code: str, at: dt.datetime) -> Sample:
        now = dt.datetime.now(dt.UTC)
        hour = floor(at, HOUR)
        points = self._points("carbon-intensity", code, hour, now)
        p = self._at(points, hour)
        if p is None and hour + HOUR > now and points:
            # Data lag: `latest` may still be the previous hour; use it, labelled with its own hour.
            lag = floor(parse_time(str(points[0].get("datetime", iso(hour)))), HOUR)
            if hour - lag <= 2 * HOUR:
                p, hour = points[0], lag
        value = p.get("carbonIntensity") if p else None
        if not isinstance(value, int | float):
            raise FeedError(NO_DATA, f"electricitymaps: no carbon intensity for {code} at {iso(hour)}")
        try:
            b = self._at(self._points("power-breakdown", code, hour, now), hour)
            mix = mix_of(b.get("powerConsumptionBreakdown")) if b else None
        except FeedError:
            mix = None  # the intensity stands; the receipt says the mix is the annual one
        basis = "direct combustion" if p and p.get("emissionFactorType") == "direct" else "life-cycle"
        return Sample(hour, HOUR, float(value), mix, None, basis)

    def forecast(self, zone: Zone, start: dt.datetime, end: dt.datetime) -> list[Sample]:
        code = self.code_for(zone)
        body = self.client().get_json(
            "/v3/carbon-intensity/forecast", {"zone": code}, headers={"auth-token": self.secrets()[0]}, max_age_s=FRESH_S
        )
        points = body.get("forecast") if isinstance(body, dict) else None
        out = []
        for p in points or []:
            if isinstance(p, dict) and isinstance(p.get("carbonIntensity"), int | float):
                t = parse_time(str(p["datetime"]))
                if start - HOUR < t < end:
                    out.append(Sample(t, HOUR, float(p["carbonIntensity"])))
        return out
