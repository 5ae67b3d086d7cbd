"""Hourly-matched market-based carbon and the 24/7 carbon-free-energy (CFE) score.

A contracts file lists what an organisation bought (PPAs, energy attribute certificates) per
zone and interval, in MWh (docs/grid.md):

    zone,start,end,volume_mwh,kind,technology,source
    FR,2026-01-15T00:00:00Z,2026-01-15T01:00:00Z,0.002,ppa,wind,PPA Ferme du Vent (metered hourly)
    FR,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,1.5,eac,hydro,Guarantees of origin 2026

An interval of one hour is an *hourly* volume: it counts for hourly matching in that hour and
zone. A longer interval (a year of certificates) counts only for annual matching: certificates
that are not time-stamped cannot say which hour they cover.

Matching, per zone and hour h, for consumption L_h (facility kWh) and hourly contracts C_h:
    matched_h  = min(L_h, C_h)                   (a surplus in one hour never covers another)
    cfe_h      = matched_h + (L_h - matched_h) x grid_cfe_share_h
    CFE score  = sum(cfe_h) / sum(L_h)           (Google, 24/7 Carbon-Free Energy: Methodologies and Metrics, 2021)
    market_g   = sum((L_h - matched_h) x residual_h) + matched x contract factor (0 g/kWh for carbon-free)
Annual matching for comparison: matched = min(sum L, all contracts of the zone), the rest at
the consumption-weighted residual intensity. Where no residual mix is given, the hour's grid
average stands in for it (warning `market-residual-approximated`), as the GHG Protocol Scope 2
Guidance (2015, section 6.11) allows when no residual mix is published; it overstates the
benefit of contracts, since the grid average still holds the contracted clean energy.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlens.errors import ConfigError
from wattlens.factors.records import ENERGY_SOURCES
from wattlens.grid import CARBON_FREE

HOUR = dt.timedelta(hours=1)
KWH_PER_MWH = 1000.0
KINDS = ("ppa", "eac")


def grid_cfe_share(mix: Mapping[str, float]) -> float:
    """The carbon-free share of a generation mix (shares of 1)."""
    return sum(float(mix.get(s, 0.0)) for s in CARBON_FREE)


@dataclass(frozen=True)
class Contract:
    zone: str
    start: dt.datetime
    end: dt.datetime
    volume_mwh: float
    kind: str
    technology: str
    source: str

    @property
    def hourly(self) -> bool:
        return self.end - self.start == HOUR


@dataclass
class Contracts:
    items: list[Contract]
    hourly_kwh: dict[tuple[str, dt.datetime], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.items:
            if c.hourly:
                key = (c.zone, c.start)
                self.hourly_kwh[key] = self.hourly_kwh.get(key, 0.0) + c.volume_mwh * KWH_PER_MWH

    def total_kwh(self, zone: str, start: dt.datetime, end: dt.datetime) -> float:
        """Every contract of the zone whose interval lies within [start, end): hourly and longer."""
        return sum(c.volume_mwh * KWH_PER_MWH for c in self.items if c.zone == zone and start <= c.start and c.end <= end)


def _time(text: str, where: str, col: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{where}: {col} {text!r} is not an ISO 8601 time") from e
    if t.tzinfo is None:
        raise ConfigError(f"{where}: {col} {text!r} has no UTC offset; write it like 2026-01-15T03:00:00Z")
    return t.astimezone(dt.UTC)


def load(path: str | Path) -> Contracts:
    """The contracts file, checked; one clear error naming the line for anything wrong."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError(f"cannot read the contracts file {p}: {e.strerror}") from e
    reader = csv.DictReader(text.splitlines())
    need = {"zone", "start", "end", "volume_mwh", "kind", "technology"}
    missing = need - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"{p}: the contracts file needs the columns {', '.join(sorted(need))} (missing {sorted(missing)})")
    items = []
    for i, row in enumerate(reader, start=2):
        where = f"{p} line {i}"
        start, end = _time(row["start"], where, "start"), _time(row["end"], where, "end")
        if end <= start:
            raise ConfigError(f"{where}: end must be after start")
        if start.minute or start.second or (end - start) % HOUR:
            raise ConfigError(f"{where}: contracts cover whole hours (start on the hour, a whole number of hours)")
        try:
            volume = float(row["volume_mwh"])
        except ValueError as e:
            raise ConfigError(f"{where}: volume_mwh must be a number, got {row['volume_mwh']!r}") from e
        if not volume >= 0:
            raise ConfigError(f"{where}: volume_mwh must not be negative")
        kind, tech = row["kind"].strip().lower(), row["technology"].strip().lower()
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if tech not in CARBON_FREE:
            known = "a fossil or bioenergy contract" if tech in ENERGY_SOURCES else f"unknown technology {tech!r}"
            raise ConfigError(f"{where}: {known}; hourly matching counts carbon-free technologies: {', '.join(CARBON_FREE)}")
        items.append(
            Contract(row["zone"].strip().upper(), start, end, volume, kind, tech, (row.get("source") or "").strip())
        )
    return Contracts(items)


@dataclass(frozen=True)
class GridHour:
    """What the grid was in one zone and hour: average intensity and carbon-free share."""

    intensity_g_per_kwh: float
    cfe_share: float


@dataclass
class Matching:
    """The result of matching consumption with contracts, hour by hour and over the whole period."""

    consumption_kwh: float = 0.0
    hourly_matched_kwh: float = 0.0
    cfe_kwh: float = 0.0
    annual_matched_kwh: float = 0.0
    location_g: float = 0.0
    market_hourly_g: float = 0.0
    market_annual_g: float = 0.0
    residual_approximated: bool = False
    by_hour_of_day: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def cfe_score(self) -> float:
        return self.cfe_kwh / self.consumption_kwh if self.consumption_kwh else 0.0

    @property
    def hourly_matched_share(self) -> float:
        return self.hourly_matched_kwh / self.consumption_kwh if self.consumption_kwh else 0.0

    @property
    def annual_matched_share(self) -> float:
        return self.annual_matched_kwh / self.consumption_kwh if self.consumption_kwh else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumption_kwh": self.consumption_kwh,
            "cfe_score": self.cfe_score,
            "hourly_matched_share": self.hourly_matched_share,
            "annual_matched_share": self.annual_matched_share,
            "carbon_g": {
                "location": self.location_g,
                "market_hourly": self.market_hourly_g,
                "market_annual": self.market_annual_g,
            },
            "residual": "grid average (approximation)" if self.residual_approximated else "given",
            "warnings": ["market-residual-approximated"] if self.residual_approximated else [],
            "by_hour_of_day": {str(h): v for h, v in sorted(self.by_hour_of_day.items())},
        }


def match(
    consumption_kwh: Mapping[tuple[str, dt.datetime], float],
    contracts: Contracts,
    grid: Callable[[str, dt.datetime], GridHour],
    residual_g_per_kwh: Mapping[str, float] | None = None,
) -> Matching:
    """Hourly and annual matching of consumption (kWh per zone and UTC hour start) with contracts. Pure."""
    m = Matching(by_hour_of_day={h: {"consumption_kwh": 0.0, "matched_kwh": 0.0, "cfe_kwh": 0.0} for h in range(24)})
    residual = residual_g_per_kwh or {}
    per_zone: dict[str, dict[str, float]] = {}
    for (zone, hour), load in sorted(consumption_kwh.items()):
        if load <= 0:
            continue
        g = grid(zone, hour)
        matched = min(load, contracts.hourly_kwh.get((zone, hour), 0.0))
        cfe = matched + (load - matched) * g.cfe_share
        r = residual.get(zone)
        if r is None:
            r, m.residual_approximated = g.intensity_g_per_kwh, True
        m.consumption_kwh += load
        m.hourly_matched_kwh += matched
        m.cfe_kwh += cfe
        m.location_g += load * g.intensity_g_per_kwh
        m.market_hourly_g += (load - matched) * r  # contracted carbon-free energy: 0 g/kWh
        z = per_zone.setdefault(zone, {"load": 0.0, "residual_g": 0.0, "first": hour.timestamp(), "last": hour.timestamp()})
        z["load"] += load
        z["residual_g"] += load * r
        z["first"], z["last"] = min(z["first"], hour.timestamp()), max(z["last"], hour.timestamp())
        row = m.by_hour_of_day[hour.hour]
        row["consumption_kwh"] += load
        row["matched_kwh"] += matched
        row["cfe_kwh"] += cfe
    for zone, z in per_zone.items():
        # Annual matching: every contract of the zone's calendar years of consumption, whatever its hour.
        first = dt.datetime.fromtimestamp(z["first"], dt.UTC)
        last = dt.datetime.fromtimestamp(z["last"], dt.UTC)
        start = dt.datetime(first.year, 1, 1, tzinfo=dt.UTC)
        end = dt.datetime(last.year + 1, 1, 1, tzinfo=dt.UTC)
        matched = min(z["load"], contracts.total_kwh(zone, start, end))
        m.annual_matched_kwh += matched
        m.market_annual_g += (z["load"] - matched) * (z["residual_g"] / z["load"])
    return m


def consumption_of(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, dt.datetime], float]:
    """Facility kWh (mid) per zone and UTC hour from ledger records (their `ts` and receipt)."""
    out: dict[tuple[str, dt.datetime], float] = {}
    for r in records:
        fp, ts = r.get("footprint"), r.get("ts")
        if not fp or not ts:
            continue
        t = dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        t = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        key = (str((fp.get("grid") or {}).get("zone", "WORLD")), t.replace(minute=0, second=0, microsecond=0))
        out[key] = out.get(key, 0.0) + float(fp["facility_wh"]["mid"]) / 1000.0
    return out


def grid_from_context(ctx: Any) -> Callable[[str, dt.datetime], GridHour]:
    """Each zone-hour's grid from a Context's feed (annual, csv:FILE or a live provider)."""

    def at(zone: str, hour: dt.datetime) -> GridHour:
        z = ctx.factors.zones.get(zone)
        r = ctx.grid.reading(z, None, hour + dt.timedelta(minutes=30))  # the middle: one value for the hour
        return GridHour(r.intensity_g_per_kwh, grid_cfe_share(r.mix))

    return at


def match_records(
    records: Iterable[Mapping[str, Any]],
    contracts: Contracts,
    ctx: Any,
    residual_g_per_kwh: Mapping[str, float] | None = None,
) -> Matching:
    """Ledger records matched with contracts, each hour priced by the context's grid feed."""
    return match(consumption_of(records), contracts, grid_from_context(ctx), residual_g_per_kwh)


__all__ = [
    "CARBON_FREE",
    "Contract",
    "Contracts",
    "GridHour",
    "Matching",
    "consumption_of",
    "grid_cfe_share",
    "grid_from_context",
    "load",
    "match",
    "match_records",
]
