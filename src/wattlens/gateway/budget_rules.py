"""A budget's definition and its arithmetic: parsing from the config or the admin API, the amount a
receipt counts in a budget's unit, and a period's bounds in its time zone. Pure; the gateway's running
budgets (counters, ledger sync, alerts) are in gateway/budgets.py."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wattlens.errors import ConfigError

UNITS = ("energy_wh", "facility_wh", "carbon_g", "carbon_market_g", "water_ml")
PERIODS = ("day", "week", "month")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Budget:
    name: str
    scope: str  # key | team | user | tag:NAME | all
    match: str | None
    unit: str
    period: str
    timezone: str = "UTC"
    soft: float | None = None
    hard: float | None = None
    on_hard: str = "refuse"
    reroute_to: str | None = None
    webhook: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_budget(d: Mapping[str, Any], where: str) -> Budget:
    """A budget from the config file or the admin API; a ConfigError that says what to fix."""
    from wattlens.config import SECTIONS, check_keys

    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: a budget is a table (name, scope, unit, period, soft and/or hard)")
    check_keys(d, SECTIONS["budgets"], where)  # the keys a [[budgets]] table may have
    name = str(d.get("name", ""))
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where}: name must be 1-64 characters A-Z, a-z, 0-9, '_', '.', '-'")
    scope = str(d.get("scope", ""))
    if scope not in ("key", "team", "user", "all") and not (scope.startswith("tag:") and len(scope) > 4):
        raise ConfigError(f"{where}: scope must be key, team, user, tag:NAME or all, got {scope!r}")
    match = d.get("match")
    if scope == "all":
        if match is not None:
            raise ConfigError(f"{where}: scope 'all' takes no match")
    elif not isinstance(match, str) or not match:
        raise ConfigError(f"{where}: scope {scope!r} needs match = the {scope.removeprefix('tag:')} it limits")
    unit = str(d.get("unit", ""))
    if unit not in UNITS:
        raise ConfigError(f"{where}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    period = str(d.get("period", ""))
    if period not in PERIODS:
        raise ConfigError(f"{where}: period must be day, week or month, got {period!r}")
    tz = str(d.get("timezone", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"{where}: unknown time zone {tz!r} (an IANA name such as Europe/Paris or UTC)") from e
    limits: dict[str, float | None] = {}
    for k in ("soft", "hard"):
        v = d.get(k)
        if v is None:
            limits[k] = None
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"{where}: {k} must be a positive number of {unit}, got {v!r}")
        limits[k] = float(v)
    soft, hard = limits["soft"], limits["hard"]
    if soft is None and hard is None:
        raise ConfigError(f"{where}: give soft, hard or both")
    if soft is not None and hard is not None and soft > hard:
        raise ConfigError(f"{where}: soft ({soft}) is above hard ({hard})")
    on_hard = str(d.get("on_hard", "refuse"))
    if on_hard not in ("refuse", "reroute"):
        raise ConfigError(f"{where}: on_hard must be refuse or reroute, got {on_hard!r}")
    reroute_to = d.get("reroute_to")
    if on_hard == "reroute" and (not isinstance(reroute_to, str) or not reroute_to):
        raise ConfigError(f"{where}: on_hard = 'reroute' needs reroute_to = a smaller model or a route name")
    webhook = d.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: webhook must be an http:// or https:// URL")
    return Budget(
        name, scope, match, unit, period, tz, soft, hard, on_hard, reroute_to if on_hard == "reroute" else None, webhook
    )


def parse_budgets(raw: Iterable[Any], where: str) -> tuple[Budget, ...]:
    out = tuple(parse_budget(d, f"{where} [[budgets]] #{i + 1}") for i, d in enumerate(raw))
    names = [b.name for b in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{where}: budget names must be unique, repeated: {', '.join(sorted(dup))}")
    return out


def amount(footprint: Mapping[str, Any] | None, unit: str) -> float:
    """The mid value of a receipt (its one JSON form) in a budget's unit."""
    if not footprint:
        return 0.0
    try:
        if unit == "energy_wh" or unit == "facility_wh":
            return float(footprint[unit]["mid"])
        if unit == "carbon_g":
            return float(footprint["carbon_g"]["location"]["mid"])
        if unit == "carbon_market_g":
            return float(footprint["carbon_g"]["market"]["mid"])
        w = footprint["water_ml"]
        return float(w["onsite"]["mid"]) + float(w["offsite"]["mid"])
    except (KeyError, TypeError, ValueError):
        return 0.0


def period_bounds(period: str, tz: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar period around `now` in the zone: [start, end) as aware datetimes."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    day = local.date()
    if period == "day":
        first, nxt = day, day + dt.timedelta(days=1)
    elif period == "week":
        first = day - dt.timedelta(days=day.weekday())
        nxt = first + dt.timedelta(days=7)
    else:
        first = day.replace(day=1)
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
    # Midnight in the zone, whatever its offset that day (DST): built from the date, not by adding hours.
    start = dt.datetime.combine(first, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(nxt, dt.time(0), tzinfo=zone)
    return start, end


def iso_utc(t: dt.datetime) -> str:
    """The ledger's time format (records' `ts`), so that times compare as strings."""
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")
