"""Carbon-aware timing: the start time with the lowest forecast intensity within a window.

`plan(forecast, now, within)` is pure: it ranks the interval that holds `now` and every interval
that starts before `now + within` by intensity (the feed's average intensity, or the marginal
one for WattTime, whose forecast is MOER), and picks the lowest, the earliest on a tie. It
assumes the work fits in one interval of the forecast; the saving is per kWh, against starting now.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattlens.errors import ConfigError, InputError
from wattlens.factors.records import Zone
from wattlens.grid.live import Sample, iso

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> dt.timedelta:
    """6h, 90m, 1h30m, 45s -> a timedelta; anything else is an InputError that shows the forms."""
    s = text.strip().lower()
    parts = _PART.findall(s)
    if not s or "".join(a + b for a, b in parts) != s:
        raise InputError(f"cannot read the duration {text!r}: write it like 6h, 90m or 1h30m")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise InputError("the window must be longer than zero")
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Plan:
    now: dt.datetime
    start: dt.datetime
    now_g_per_kwh: float
    chosen_g_per_kwh: float
    candidates: int
    basis: str  # "average" or "marginal"

    @property
    def wait_s(self) -> float:
        return max(0.0, (self.start - self.now).total_seconds())

    @property
    def saving_share(self) -> float:
        """The carbon avoided per kWh, as a share of starting now."""
        return (self.now_g_per_kwh - self.chosen_g_per_kwh) / self.now_g_per_kwh if self.now_g_per_kwh > 0 else 0.0

    def avoided_g(self, facility_wh: float) -> float:
        return facility_wh * (self.now_g_per_kwh - self.chosen_g_per_kwh) / 1000.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "start": iso(self.start),
            "wait_s": round(self.wait_s, 1),
            "now_g_per_kwh": self.now_g_per_kwh,
            "chosen_g_per_kwh": self.chosen_g_per_kwh,
            "saving_share": round(self.saving_share, 5),
            "candidates": self.candidates,
            "basis": self.basis,
        }


def plan(forecast: Sequence[Sample], now: dt.datetime, within: dt.timedelta, basis: str = "average") -> Plan:
    """The lowest-intensity start in [now, now + within] from a forecast's intervals."""
    series = sorted((s for s in forecast if s.intensity_g_per_kwh is not None), key=lambda s: s.start)
    current = next((s for s in series if s.start <= now < s.start + s.step), None)
    if current is None or current.intensity_g_per_kwh is None:
        raise InputError(f"the forecast does not cover now ({iso(now)}): cannot compare start times")
    options = [(now, current.intensity_g_per_kwh)]
    options += [
        (s.start, s.intensity_g_per_kwh)
        for s in series
        if now < s.start <= now + within and s.intensity_g_per_kwh is not None
    ]
    start, g = min(options, key=lambda o: (o[1], o[0]))
    return Plan(now, start, current.intensity_g_per_kwh, g, len(options), basis)


def forecast_of(feed: Any, zone: Zone, now: dt.datetime, within: dt.timedelta) -> tuple[list[Sample], str]:
    """The feed's forecast over the window, and whether it ranks average or marginal intensity."""
    get = getattr(feed, "forecast", None)
    if get is None:
        raise ConfigError(
            f"the {getattr(feed, 'name', '?')} grid feed has no forecast: use --grid csv:FILE, electricitymaps, "
            "watttime:REGION or ukci (docs/grid.md)"
        )
    samples: list[Sample] = get(zone, now, now + within)
    return samples, "marginal" if getattr(feed, "name", "") == "watttime" else "average"


__all__ = ["Plan", "forecast_of", "parse_duration", "plan"]
