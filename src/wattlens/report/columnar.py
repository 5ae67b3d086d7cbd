"""Reports over millions of records: DuckDB aggregates the ledger's Parquet export.

    wattlens ledger export --format parquet -o ledger.parquet
    wattlens report --parquet ledger.parquet --format html -o report.html

Produces the same Report as build() (tested), with the sums done in SQL instead of Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattlens.errors import InputError
from wattlens.ledger.summary import QUANTITIES, TAG_PREFIX, check_key, collapse
from wattlens.report import SOURCES, Report, bounded, missing_reason

if TYPE_CHECKING:
    from wattlens.factors import FactorSet

COLUMNS = {
    "energy_wh": "energy_wh",
    "facility_wh": "facility_wh",
    "carbon_location_g": "carbon_location_g",
    "carbon_market_g": "carbon_market_g",
    "carbon_embodied_g": "carbon_embodied_g",
}
KEY_SQL = {
    "model": "coalesce(model_served, model_requested, '-')",
    "minute": "substr(ts, 1, 16)",
    "hour": "substr(ts, 1, 13)",
    "day": "substr(ts, 1, 10)",
    "month": "substr(ts, 1, 7)",
    "zone": "coalesce(zone, '-')",
    "method": "coalesce(method, 'none')",
    "team": "coalesce(team, '-')",
    "user": "coalesce(\"user\", '-')",
    "upstream": "coalesce(upstream, '-')",
    "endpoint": "coalesce(endpoint, '-')",
}


def key_sql(by: str) -> str:
    """The SQL expression of a breakdown key; tag:NAME reads the export's `tags` JSON column."""
    if by.startswith(TAG_PREFIX):
        name = by[len(TAG_PREFIX) :].replace('"', "").replace("'", "''")
        return f"coalesce(json_extract_string(tags, '$.\"{name}\"'), '-')"
    return KEY_SQL[by]


def _aggregates() -> str:
    parts = ["count(*) AS requests", "count(energy_wh_mid) AS with_receipt"]
    for t in ("input", "cached_input", "output", "reasoning"):
        parts.append(f"coalesce(sum(tokens_{t}), 0) AS tok_{t}")
    for m in ("measured", "estimated", "mixed"):
        parts.append(f"count(*) FILTER (WHERE method = '{m}') AS m_{m}")
    for q in QUANTITIES:
        for b in ("low", "mid", "high"):
            if q == "water_ml":
                parts.append(f"coalesce(sum(water_onsite_ml_{b} + water_offsite_ml_{b}), 0) AS {q}_{b}")
            else:
                parts.append(f"coalesce(sum({COLUMNS[q]}_{b}), 0) AS {q}_{b}")
    return ", ".join(parts)


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "requests": int(row["requests"]),
        "with_receipt": int(row["with_receipt"]),
        "tokens": {t: int(row[f"tok_{t}"]) for t in ("input", "cached_input", "output", "reasoning")},
        "routed": 0,
        "routed_to_small": 0,
        "energy_saved_wh": {"low": 0.0, "mid": 0.0, "high": 0.0},
        "methods": {m: int(row[f"m_{m}"]) for m in ("measured", "estimated", "mixed")},
        **{q: {b: float(row[f"{q}_{b}"]) for b in ("low", "mid", "high")} for q in QUANTITIES},
    }


def build_from_parquet(
    path: str | Path,
    by: Sequence[str] = ("model", "team", "zone", "day"),
    period: str = "all records",
    since: str | None = None,
    until: str | None = None,
    *,
    factors: FactorSet,
) -> Report:
    try:
        import duckdb
    except ImportError as e:
        raise InputError("reports over Parquet need DuckDB: pip install 'wattlens[report]'") from e
    import datetime as dt

    for b in by:
        check_key(b)
    con = duckdb.connect()

    def lit(v: str) -> str:  # a view cannot take parameters: quote literals the SQL way
        return "'" + v.replace("'", "''") + "'"

    where = "WHERE 1=1" + (f" AND ts >= {lit(since)}" if since else "") + (f" AND ts < {lit(until)}" if until else "")
    try:
        con.execute(f"CREATE VIEW r AS SELECT * FROM read_parquet({lit(str(path))}) {where}")
    except duckdb.Error as e:
        raise InputError(f"cannot read {path} as a wattlens Parquet export: {e}") from e
    agg = _aggregates()

    def rows(sql: str) -> list[dict[str, Any]]:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    total = _totals(rows(f"SELECT {agg} FROM r")[0])
    groups = {
        b: {str(g["k"]): _totals(g) for g in rows(f"SELECT {key_sql(b)} AS k, {agg} FROM r GROUP BY 1 ORDER BY 1")}
        for b in by
    }
    groups = {b: collapse(g) if b.startswith(TAG_PREFIX) else g for b, g in groups.items()}
    found = {h: _totals(g) for g in rows(f"SELECT hosting AS h, {agg} FROM r GROUP BY 1") for h in [str(g["h"])]}
    zero = dict.fromkeys(rows(f"SELECT {agg} FROM r WHERE FALSE")[0], 0)
    hosting = {h: found.pop(h) if h in found else _totals(zero) for h in ("own", "purchased")} | found  # build()'s order
    users = int(con.execute('SELECT count(DISTINCT "user") FROM r WHERE "user" IS NOT NULL').fetchone()[0])  # type: ignore[index]
    fs = factors
    mix_wh = dict.fromkeys(SOURCES, 0.0)
    zones = []
    for zone, wh in con.execute("SELECT zone, sum(energy_wh_mid) FROM r WHERE zone IS NOT NULL GROUP BY 1").fetchall():
        zones.append(str(zone))
        z = fs.zones.find(str(zone))
        if z is not None:
            for s, share in z.mix.items():
                mix_wh[s] += float(wh) * share
    total_mix = sum(mix_wh.values())
    by_source = {h: {s: {"low": 0.0, "mid": 0.0, "high": 0.0} for s in SOURCES} for h in ("own", "purchased")}
    for host, zone, *wh in con.execute(
        "SELECT hosting, zone, sum(facility_wh_low), sum(facility_wh_mid), sum(facility_wh_high) FROM r "
        "WHERE zone IS NOT NULL GROUP BY 1, 2"
    ).fetchall():
        z = fs.zones.find(str(zone))
        if z is not None and str(host) in by_source:  # the zone's annual mix (records priced otherwise differ)
            for s, share in z.mix.items():
                for b, v in zip(("low", "mid", "high"), wh, strict=True):
                    by_source[str(host)][s][b] += float(v or 0.0) * share
    from collections import Counter

    missing: Counter[str] = Counter()
    for outcome, error, n in con.execute(
        "SELECT outcome, footprint_error, count(*) FROM r WHERE energy_wh_mid IS NULL GROUP BY 1, 2"
    ).fetchall():
        missing[missing_reason({"outcome": outcome, "footprint_error": error})] += int(n)
    first_ts, last_ts = con.execute("SELECT coalesce(min(ts), ''), coalesce(max(ts), '') FROM r").fetchone() or ("", "")
    models = [str(m[0]) for m in con.execute(f"SELECT DISTINCT {KEY_SQL['model']} FROM r").fetchall()]
    versions = [
        str(v[0]) for v in con.execute("SELECT DISTINCT factors_version FROM r WHERE factors_version IS NOT NULL").fetchall()
    ]
    return Report(
        period=period,
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        total=total,
        groups=groups,
        hosting=hosting,
        users=users,
        mix={s: (v / total_mix if total_mix else 0.0) for s, v in mix_wh.items()},
        zones=sorted(zones),
        models=sorted(models),
        factors_versions=sorted(versions),
        missing=bounded(missing),
        facility_by_source_wh=by_source,
        first_ts=str(first_ts),
        last_ts=str(last_ts),
    )
