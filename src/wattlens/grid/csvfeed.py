"""`csv:FILE`: a user's time series of grid intensity, at any resolution, several zones per file.

Columns (docs/grid.md): zone, timestamp (ISO 8601 with a UTC offset or Z, the start of each
interval), intensity_g_per_kwh; optional basis (life-cycle | direct combustion),
marginal_g_per_kwh, and one `<source>_share` column per generation source (coal_share,
wind_share, ...). A reading takes the interval that holds the time of the query; a time the file
does not cover falls back to the annual tables and says so (warning `grid-feed-no-data`).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from wattlens.errors import ConfigError
from wattlens.factors.records import ENERGY_SOURCES, CloudRegion, Zone
from wattlens.grid import AnnualFeed, GridReading
from wattlens.grid.live import Sample

BASES = ("life-cycle", "direct combustion")


@dataclass(frozen=True)
class Point:
    start: dt.datetime
    intensity_g_per_kwh: float
    basis: str
    marginal_g_per_kwh: float | None
    mix: dict[str, float] | None


@dataclass
class Series:
    points: list[Point]
    starts: list[dt.datetime] = field(default_factory=list)
    step: dt.timedelta = dt.timedelta(hours=1)

    def label(self) -> str:
        s = int(self.step.total_seconds())
        named = {3600: "hourly", 1800: "30-minute", 900: "15-minute", 300: "5-minute", 86400: "daily"}
        return named.get(s, f"{s}-second")


def _time(text: str, where: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{where}: timestamp {text!r} is not ISO 8601") from e
    if t.tzinfo is None:
        raise ConfigError(f"{where}: timestamp {text!r} has no UTC offset; write it like 2026-01-15T03:00:00Z")
    return t.astimezone(dt.UTC)


def _number(row: dict[str, str], col: str, where: str) -> float | None:
    v = (row.get(col) or "").strip()
    if not v:
        return None
    try:
        x = float(v)
    except ValueError as e:
        raise ConfigError(f"{where}: {col} must be a number, got {v!r}") from e
    if not x >= 0:
        raise ConfigError(f"{where}: {col} must not be negative, got {v!r}")
    return x


def load(path: Path) -> dict[str, Series]:
    """Every zone's series, checked: one clear error naming the line for anything wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError(f"cannot read the grid file {path}: {e.strerror}") from e
    reader = csv.DictReader(text.splitlines())
    missing = {"zone", "timestamp", "intensity_g_per_kwh"} - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(
            f"{path}: the grid file needs the columns zone, timestamp, intensity_g_per_kwh (missing {sorted(missing)})"
        )
    shares = [s for s in ENERGY_SOURCES if f"{s}_share" in (reader.fieldnames or ())]
    by_zone: dict[str, list[Point]] = {}
    for i, row in enumerate(reader, start=2):
        where = f"{path} line {i}"
        intensity = _number(row, "intensity_g_per_kwh", where)
        if intensity is None:
            raise ConfigError(f"{where}: intensity_g_per_kwh is empty")
        basis = (row.get("basis") or "life-cycle").strip()
        if basis not in BASES:
            raise ConfigError(f"{where}: basis must be one of {', '.join(BASES)}, got {basis!r}")
        mix = None
        if shares:
            values = {s: _number(row, f"{s}_share", where) or 0.0 for s in shares}
            total = sum(values.values())
            if total > 0:
                if abs(total - 1.0) > 0.02:
                    raise ConfigError(f"{where}: the source shares add up to {total:.3f}, not 1")
                mix = {s: values.get(s, 0.0) / total for s in ENERGY_SOURCES}
        point = Point(_time(row["timestamp"], where), intensity, basis, _number(row, "marginal_g_per_kwh", where), mix)
        by_zone.setdefault(row["zone"].strip().upper(), []).append(point)
    out = {}
    for zone, points in by_zone.items():
        points.sort(key=lambda p: p.start)
        starts = [p.start for p in points]
        gaps_s = [(b - a).total_seconds() for a, b in itertools.pairwise(starts) if b > a]
        # The smallest spacing is the resolution: a gap in the file is missing data, not a longer interval.
        step = dt.timedelta(seconds=min(gaps_s)) if gaps_s else dt.timedelta(hours=1)
        out[zone] = Series(points, starts, step)
    return out


class CsvFeed:
    """A time series from a file; `configured(path)` gives the feed for one file."""

    name = "csv"

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path).expanduser() if path else None
        self._series: dict[str, Series] | None = None
        self._lock = threading.Lock()
        self._annual = AnnualFeed()

    def configured(self, arg: str) -> CsvFeed:
        feed = CsvFeed(arg)
        feed.series()  # a bad file fails at start-up, not at the first receipt
        return feed

    def series(self) -> dict[str, Series]:
        if self.path is None:
            raise ConfigError('the csv grid feed needs a file: --grid csv:FILE (or [grid] feed = "csv:FILE")')
        if self._series is None:
            with self._lock:
                if self._series is None:
                    self._series = load(self.path)
        return self._series

    def forecast(self, zone: Zone, start: dt.datetime, end: dt.datetime) -> list[Sample]:
        """The file's intervals for the zone that overlap [start, end): a forecast for `run --within`."""
        s = self.series().get(zone.zone.upper())
        if s is None:
            return []
        return [
            Sample(p.start, s.step, p.intensity_g_per_kwh, p.mix, p.marginal_g_per_kwh, p.basis)
            for p in s.points
            if p.start + s.step > start and p.start < end
        ]

    def reading(self, zone: Zone, region: CloudRegion | None, at: dt.datetime | None) -> GridReading:
        when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        s = self.series().get(zone.zone.upper())
        i = bisect.bisect_right(s.starts, when) - 1 if s else -1
        if s is None or i < 0 or when >= s.starts[i] + s.step:
            annual = self._annual.reading(zone, region, at)
            return _with_warning(annual, "grid-feed-no-data")
        p = s.points[i]
        warnings = () if p.mix is not None else ("grid-mix-annual",)
        source = f"{self.path.name if self.path else 'csv'} (user grid file)"
        return GridReading(
            zone.zone,
            p.start.year,
            p.intensity_g_per_kwh,
            p.mix if p.mix is not None else zone.mix,
            warnings,
            s.label(),
            p.basis,
            source,
            p.start.isoformat().replace("+00:00", "Z"),
            p.marginal_g_per_kwh,
        )


def _with_warning(r: GridReading, code: str) -> GridReading:
    import dataclasses

    return dataclasses.replace(r, warnings=(*r.warnings, code))
