"""`watttime:REGION`: WattTime API v3, the marginal operating emissions rate (MOER) of a grid region.

Protocol (https://docs.watttime.org): GET /login with HTTP Basic auth answers {"token": ...}
(valid 30 minutes), then `Authorization: Bearer TOKEN` on
  /v3/historical?region=R&start=T&end=T&signal_type=co2_moer   (past; subscribers, or CAISO_NORTH)
  /v3/forecast?region=R&signal_type=co2_moer                    (now and the next hours)
  /v3/signal-index?region=R&signal_type=co2_moer                (now, as a 0-100 percentile)
each {"data": [{"point_time": ..., "value": ...}], "meta": {"units": "lbs_co2_per_mwh",
"data_point_period_seconds": 300, ...}}. Rate limit: 3,000 requests per 5 minutes (login: 100).

MOER is a *marginal* rate (what one more kWh causes, direct combustion): it goes to the receipt's
`marginal` carbon. WattTime gives no average intensity, so location-based carbon keeps the annual
average, and the grid block's basis says both (warning `grid-marginal-only`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from typing import Any, ClassVar

from wattlens.errors import ConfigError
from wattlens.factors.records import Zone
from wattlens.grid import GridReading
from wattlens.grid.http import NO_DATA, UNAUTHORISED, FeedError
from wattlens.grid.live import FRESH_S, HOUR, LiveFeed, Sample, floor, iso, max_age_s, parse_time

G_PER_LB = 453.59237  # lbs/MWh x 453.59237 g/lb / 1000 kWh/MWh = g/kWh
TOKEN_LIFE_S = 25 * 60  # WattTime tokens last 30 minutes: renew a little before


def g_per_kwh(value: float, units: str) -> float:
    if units not in ("lbs_co2_per_mwh", "lbs_co2e_per_mwh"):
        raise FeedError(NO_DATA, f"watttime: unexpected units {units!r}")
    return value * G_PER_LB / 1000.0


class WattTimeFeed(LiveFeed):
    name: str = "watttime"
    title: ClassVar[str] = "WattTime API v3 MOER"
    default_url: ClassVar[str] = "https://api.watttime.org"
    token_vars: ClassVar[tuple[str, ...]] = ("WATTLENS_WATTTIME_USERNAME", "WATTLENS_WATTTIME_PASSWORD")

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    def check(self) -> None:
        if not self.arg:
            raise ConfigError("the watttime feed needs a WattTime region: --grid watttime:CAISO_NORTH")
        super().check()

    def secrets(self) -> tuple[str, ...]:
        token = getattr(self, "_token", None)
        return (*super().secrets(), *((token[0],) if token else ()))

    def _login(self, renew: bool = False) -> str:
        with self._token_lock:
            if self._token and not renew and time.monotonic() < self._token[1]:
                return self._token[0]
            user, password = (self.options.env.get(v, "") for v in self.token_vars)
            # The token lives in memory only: never in the disk cache.
            body = self.client().get_json("/login", basic_auth=(user, password), max_age_s=0, cache=False)
            token = body.get("token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise FeedError(UNAUTHORISED, "watttime: the login answer has no token")
            self._token = (token, time.monotonic() + TOKEN_LIFE_S)
            self.client().secrets = self.secrets()
            return token

    def _data(self, path: str, params: dict[str, str], max_age: float | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self._login(renew=attempt == 1)}"}
            try:
                body = self.client().get_json(path, params, headers=headers, max_age_s=max_age)
                break
            except FeedError as e:
                if e.code != UNAUTHORISED or attempt == 1:
                    raise
        if not isinstance(body, dict):
            raise FeedError(NO_DATA, f"watttime: unexpected answer from {path}")
        data = [p for p in body.get("data") or [] if isinstance(p, dict)]
        return data, body.get("meta") or {}

    def _samples(self, data: list[dict[str, Any]], meta: dict[str, Any]) -> list[Sample]:
        step = dt.timedelta(seconds=int(meta.get("data_point_period_seconds") or 300))
        units = str(meta.get("units", "lbs_co2_per_mwh"))
        return [
            Sample(parse_time(str(p["point_time"])), step, None, None, g_per_kwh(float(p["value"]), units), "marginal")
            for p in data
            if isinstance(p.get("value"), int | float) and p.get("point_time")
        ]

    def sample(self, code: str, at: dt.datetime) -> Sample:
        now = dt.datetime.now(dt.UTC)
        if at >= now - dt.timedelta(minutes=10):
            data, meta = self._data("/v3/forecast", {"region": code, "signal_type": "co2_moer"}, FRESH_S)
            samples = self._samples(data, meta)
            if samples and at < samples[0].start:  # the forecast starts at the current 5 minutes
                return samples[0]
        else:
            hour = floor(at, HOUR)
            params = {"region": code, "start": iso(hour), "end": iso(hour + HOUR), "signal_type": "co2_moer"}
            data, meta = self._data("/v3/historical", params, max_age_s(hour + HOUR, now))
            samples = self._samples(data, meta)
        for s in samples:
            if s.start <= at < s.start + s.step:
                return s
        raise FeedError(NO_DATA, f"watttime: no MOER for {code} at {iso(at)}")

    def signal_index(self, zone: Zone) -> float:
        """Now, as WattTime's percentile of the next day (0 cleanest, 100 dirtiest)."""
        data, _ = self._data("/v3/signal-index", {"region": self.code_for(zone), "signal_type": "co2_moer"}, FRESH_S)
        if not data or not isinstance(data[0].get("value"), int | float):
            raise FeedError(NO_DATA, "watttime: no signal index")
        return float(data[0]["value"])

    def forecast(self, zone: Zone, start: dt.datetime, end: dt.datetime) -> list[Sample]:
        data, meta = self._data("/v3/forecast", {"region": self.code_for(zone), "signal_type": "co2_moer"}, FRESH_S)
        # Marginal is what timing changes: the plan ranks start times by MOER.
        return [
            dataclasses.replace(s, intensity_g_per_kwh=s.marginal_g_per_kwh)
            for s in self._samples(data, meta)
            if start - s.step < s.start < end
        ]

    def to_reading(self, zone: Zone, annual: GridReading, s: Sample) -> GridReading:
        return dataclasses.replace(
            annual,
            warnings=(*annual.warnings, "grid-marginal-only"),
            basis=f"{annual.basis} (annual average); marginal: WattTime MOER, {int(s.step.total_seconds() // 60)}-minute",
            source=f"{annual.source}; marginal: {self.title} ({self.code_for(zone)})",
            at=iso(s.start),
            marginal_g_per_kwh=s.marginal_g_per_kwh,
        )
