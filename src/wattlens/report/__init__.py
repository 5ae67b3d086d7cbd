"""Organisation footprint reports from the ledger (`wattlens report`).

build() turns ledger records into a Report (plain data); render.py writes it as Markdown, HTML,
PDF, CSV or JSON. Every total is an interval summed bound by bound over the records.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wattlens.errors import InputError
from wattlens.ledger.summary import QUANTITIES, TAG_PREFIX, add, check_key, collapse, empty, hosting_of, key_of

if TYPE_CHECKING:
    from wattlens.context import Context

SOURCES = ("coal", "gas", "oil", "nuclear", "hydro", "wind", "solar", "bioenergy", "other")
DEFAULT_BY = ("model", "team", "zone", "day")
# Why a record has no receipt, by its outcome (metering.Call.outcome), in words for the report.
OUTCOMES = {
    "rejected": "refused by the gateway before any model ran (authentication, budget or bad input)",
    "upstream_error": "the upstream answered with an error, so no tokens were served",
    "client_disconnected": "the client disconnected before the upstream reported its token usage",
    "no_usage": "the upstream did not report token usage",
    "failed": "the measured command failed",
}
REASONS_MAX = 8  # distinct reasons listed; the rest are counted together


def missing_reason(rec: dict[str, Any]) -> str:
    """Why a record carries no receipt, in words."""
    err = rec.get("footprint_error")
    if err:
        return f"the receipt could not be computed: {str(err)[:160]}"
    outcome = str(rec.get("outcome") or "")
    return OUTCOMES.get(outcome, f"outcome {outcome or 'not recorded'}")


def period_bounds(period: str | None, since: str | None, until: str | None) -> tuple[str | None, str | None, str]:
    """(since, until, label) from --period YYYY or YYYY-MM, or explicit ISO bounds."""
    if period:
        try:
            if len(period) == 4:
                y = int(period)
                return f"{y}-01-01", f"{y + 1}-01-01", period
            y, m = (int(x) for x in period.split("-"))
            last = calendar.monthrange(y, m)[1]
            end = dt.date(y, m, last) + dt.timedelta(days=1)
            return f"{y}-{m:02d}-01", end.isoformat(), period
        except ValueError as e:
            raise InputError(f"--period takes YYYY or YYYY-MM, got {period!r}") from e
    label = f"{since or 'start'} to {until or 'now'}" if since or until else "all records"
    return since, until, label


@dataclass
class Report:
    period: str
    generated: str
    total: dict[str, Any]
    groups: dict[str, dict[str, dict[str, Any]]]
    hosting: dict[str, dict[str, Any]]
    users: int
    mix: dict[str, float]
    zones: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    factors_versions: list[str] = field(default_factory=list)
    hours: dict[int, dict[str, float]] = field(default_factory=dict)  # hour of day (UTC) -> energy and carbon
    grid_basis: str = "as recorded"  # or how the records were re-priced with a grid feed
    missing: dict[str, int] = field(default_factory=dict)  # records without a receipt, by reason
    checkpoint: str = ""  # the ledger's signed checkpoint the report was made at ("" when none)
    # Facility energy by generation source of the grid, per hosting (own | purchased): {low, mid, high} Wh.
    facility_by_source_wh: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    since: str | None = None  # the period's bounds (ISO), when it has them
    until: str | None = None
    first_ts: str = ""  # the earliest and latest record in it
    last_ts: str = ""
    cfe: dict[str, Any] | None = None  # hourly matching with contracts (grid.contracts.Matching.as_dict), when given

    @property
    def is_empty(self) -> bool:
        return int(self.total["requests"]) == 0

    def intensity(self, quantity: str = "energy_wh") -> dict[str, dict[str, float] | None]:
        t = self.total
        q = t[quantity]
        tokens = sum(t["tokens"].values())
        n = t["with_receipt"]

        def per(d: float) -> dict[str, float] | None:
            return {b: q[b] / d for b in ("low", "mid", "high")} if d > 0 else None

        return {
            "per_1000_queries": per(n / 1000.0),
            "per_user": per(float(self.users)),
            "per_million_tokens": per(tokens / 1e6),
        }


def reprice(rec: dict[str, Any], ctx: Context) -> tuple[dict[str, Any], str]:
    """The record with location-based carbon recomputed from the context's grid feed at the record's time.

    carbon_location = facility_wh x intensity(zone, ts) / 1000, bound by bound; market-based carbon
    follows it where it equalled location-based (no contract). Returns the record and the grid's resolution.
    """
    import copy

    fp = rec.get("footprint")
    if not fp or not rec.get("ts"):
        return rec, "none"
    zone = ctx.factors.zones.find(str((fp.get("grid") or {}).get("zone", "")))
    if zone is None:
        return rec, "none"
    at = dt.datetime.fromisoformat(str(rec["ts"]))
    g = ctx.grid.reading(zone, None, at if at.tzinfo else at.replace(tzinfo=dt.UTC))
    out = copy.deepcopy(rec)
    f2 = out["footprint"]
    loc = {b: float(f2["facility_wh"][b]) * g.intensity_g_per_kwh / 1000.0 for b in ("low", "mid", "high")}
    if f2["carbon_g"]["market"] == f2["carbon_g"]["location"]:
        f2["carbon_g"]["market"] = dict(loc)
    f2["carbon_g"]["location"] = loc
    f2["grid"] = {**f2["grid"], "intensity_g_per_kwh": g.intensity_g_per_kwh, "mix": dict(g.mix), "resolution": g.resolution}
    return out, g.resolution


def checkpoint_of(ledger: Any) -> str:
    """The ledger's Merkle log state the report was made at (size and RFC 9162 root), or "" when it has none.

    `wattlens verify --checkpoint` proves a later ledger still extends it.
    """
    import base64

    state = ledger.stored_state()
    if state is None or not state.size:
        return ""
    return f"Merkle log of {state.size:,} records, root {base64.b64encode(state.root).decode()}"


def build(
    records: Iterable[dict[str, Any]],
    by: Sequence[str] = DEFAULT_BY,
    period: str = "all records",
    reprice_with: Context | None = None,
) -> Report:
    """Totals, breakdowns, the grid mix and an hour-of-day profile of ledger records.

    reprice_with: a context whose grid feed (e.g. csv:FILE) re-prices each record's carbon at its own time.
    """
    total = empty()
    groups: dict[str, dict[str, dict[str, Any]]] = {b: {} for b in by}
    hosting: dict[str, dict[str, Any]] = {"own": empty(), "purchased": empty()}
    users: set[str] = set()
    mix_wh = dict.fromkeys(SOURCES, 0.0)
    zones: set[str] = set()
    models: set[str] = set()
    versions: set[str] = set()
    hours: dict[int, dict[str, float]] = {h: {"energy_wh": 0.0, "carbon_location_g": 0.0} for h in range(24)}
    resolutions: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    by_source = {h: {s: {"low": 0.0, "mid": 0.0, "high": 0.0} for s in SOURCES} for h in ("own", "purchased")}
    for b in by:
        check_key(b)
    first_ts, last_ts = "", ""
    for r in records:
        ts = str(r.get("ts") or "")
        if ts and (not first_ts or ts < first_ts):
            first_ts = ts
        if ts > last_ts:
            last_ts = ts
        if reprice_with is not None:
            r, resolution = reprice(r, reprice_with)
            resolutions[resolution] += 1
        add(total, r)
        add(hosting[hosting_of(r)], r)
        for b in by:
            add(groups[b].setdefault(key_of(r, b), empty()), r)
        if r.get("user"):
            users.add(str(r["user"]))
        fp = r.get("footprint")
        if r.get("factors_version"):
            versions.add(str(r["factors_version"]))
        if not fp:
            missing[missing_reason(r)] += 1
            continue
        wh = float(fp["energy_wh"]["mid"])
        grid = fp.get("grid") or {}
        fac = fp.get("facility_wh") or {}
        mine = by_source[hosting_of(r)]
        for s, share in (grid.get("mix") or {}).items():
            if s in mix_wh:
                mix_wh[s] += wh * float(share)
                for b in ("low", "mid", "high"):
                    mine[s][b] += float(fac.get(b, 0.0)) * float(share)
        zones.add(str(grid.get("zone")))
        models.add(str(fp.get("model") or r.get("model_served")))
        if len(ts) >= 13 and ts[11:13].isdigit():
            h = hours[int(ts[11:13])]
            h["energy_wh"] += wh
            h["carbon_location_g"] += float(fp["carbon_g"]["location"]["mid"])
    total_mix = sum(mix_wh.values())
    mix = {s: (v / total_mix if total_mix > 0 else 0.0) for s, v in mix_wh.items()}
    basis = "as recorded"
    if reprice_with is not None:
        feed = reprice_with.grid.name
        basis = f"re-priced with the {feed} grid feed: " + ", ".join(f"{n:,} at {k}" for k, n in resolutions.most_common())
    return Report(
        period=period,
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        total=total,
        groups={
            b: collapse(dict(sorted(g.items()))) if b.startswith(TAG_PREFIX) else dict(sorted(g.items()))
            for b, g in groups.items()
        },
        hosting=hosting,
        users=len(users),
        mix=mix,
        zones=sorted(zones),
        models=sorted(models),
        factors_versions=sorted(versions),
        hours=hours,
        grid_basis=basis,
        missing=bounded(missing),
        facility_by_source_wh=by_source,
        first_ts=first_ts,
        last_ts=last_ts,
    )


def bounded(reasons: Counter[str]) -> dict[str, int]:
    """The most frequent reasons, the rest counted as one line."""
    top = reasons.most_common(REASONS_MAX)
    rest = sum(reasons.values()) - sum(n for _, n in top)
    return {**dict(top), **({"other reasons": rest} if rest else {})}


__all__ = [
    "DEFAULT_BY",
    "QUANTITIES",
    "Report",
    "build",
    "checkpoint_of",
    "hosting_of",
    "period_bounds",
    "reprice",
]
