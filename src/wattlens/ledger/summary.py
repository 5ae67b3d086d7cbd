"""Totals of ledger records by a key: the numbers behind the dashboard and the reports.

Each quantity is summed bound by bound (low with low, high with high), which keeps every
total an interval that contains the sum of the mid points.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

QUANTITIES: dict[str, tuple[tuple[str, ...], ...]] = {
    "energy_wh": (("energy_wh",),),
    "facility_wh": (("facility_wh",),),
    "carbon_location_g": (("carbon_g", "location"),),
    "carbon_market_g": (("carbon_g", "market"),),
    "carbon_embodied_g": (("carbon_g", "embodied"),),
    "water_ml": (("water_ml", "onsite"), ("water_ml", "offsite")),
}
KEYS = ("model", "upstream", "team", "user", "minute", "hour", "day", "month", "zone", "method", "endpoint")
TAG_PREFIX = "tag:"  # `tag:NAME` groups by the free-form tag NAME of the records
TAG_VALUES_MAX = 20  # distinct values shown per tag; the rest collapse into "other" so reports stay small


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def hosting_of(rec: dict[str, Any]) -> str:
    """own (hardware you run: Scope 2) or purchased (an AI service: Scope 3).

    Records carry it since schema_version 1; older ones are judged by their method (measured = own).
    """
    h = rec.get("hosting")
    if h in ("own", "purchased"):
        return str(h)
    m = (rec.get("footprint") or {}).get("method")
    return "own" if m in ("measured", "mixed") else "purchased"


def key_of(rec: dict[str, Any], by: str) -> str:
    fp = rec.get("footprint") or {}
    if by == "model":
        return str(rec.get("model_served") or rec.get("model_requested") or "-")
    if by == "day":
        return str(rec.get("ts", ""))[:10]
    if by == "hour":  # 2026-11-25T16 (UTC, as records are stamped)
        return str(rec.get("ts", ""))[:13]
    if by == "minute":
        return str(rec.get("ts", ""))[:16]
    if by == "month":
        return str(rec.get("ts", ""))[:7]
    if by == "zone":
        return str(_dig(fp, ("grid", "zone")) or "-")
    if by == "method":
        return str(fp.get("method") or "none")
    if by.startswith(TAG_PREFIX):
        tags = rec.get("tags")
        return str((tags.get(by[len(TAG_PREFIX) :]) if isinstance(tags, dict) else None) or "-")
    return str(rec.get(by) or "-")


def check_key(by: str) -> None:
    """Raise InputError unless `by` is a known key or tag:NAME."""
    if by in KEYS or (by.startswith(TAG_PREFIX) and len(by) > len(TAG_PREFIX)):
        return
    from wattlens.errors import InputError

    raise InputError(f"cannot group by {by!r}; choose one of {', '.join(KEYS)}, or tag:NAME for a free-form tag")


def merge(acc: dict[str, Any], other: dict[str, Any]) -> None:
    """Add the totals `other` into `acc` (both made by empty())."""
    for k, v in other.items():
        if isinstance(v, dict):
            for b, x in v.items():
                acc[k][b] += x
        else:
            acc[k] += v


def collapse(groups: dict[str, dict[str, Any]], limit: int = TAG_VALUES_MAX) -> dict[str, dict[str, Any]]:
    """The `limit` - 1 groups with the most requests, and the rest summed into "other" (totals unchanged)."""
    if len(groups) <= limit:
        return groups
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["requests"], kv[0]))
    kept = dict(ranked[: limit - 1])
    other = kept.pop("other", None) or empty()
    for _, g in ranked[limit - 1 :]:
        merge(other, g)
    return {**dict(sorted(kept.items())), "other": other}


def for_team(records: Iterable[dict[str, Any]], team: str | None) -> Iterator[dict[str, Any]]:
    """The records a viewer may read: every one (team None: an admin, or loopback without keys) or its team's."""
    if team is None:
        yield from records
        return
    for r in records:
        if r.get("team") == team:
            yield r


def empty() -> dict[str, Any]:
    return {
        "requests": 0,
        "with_receipt": 0,
        "tokens": {"input": 0, "cached_input": 0, "output": 0, "reasoning": 0},
        "routed": 0,
        "routed_to_small": 0,
        "energy_saved_wh": {"low": 0.0, "mid": 0.0, "high": 0.0},
        "methods": {"measured": 0, "estimated": 0, "mixed": 0},
        **{q: {"low": 0.0, "mid": 0.0, "high": 0.0} for q in QUANTITIES},
    }


def add(acc: dict[str, Any], rec: dict[str, Any]) -> None:
    acc["requests"] += 1
    for k, v in (rec.get("tokens") or {}).items():
        if k in acc["tokens"] and isinstance(v, int):
            acc["tokens"][k] += v
    fp = rec.get("footprint")
    if not fp:
        return
    acc["with_receipt"] += 1
    routing = fp.get("routing")
    if isinstance(routing, dict):
        acc["routed"] += 1
        if routing.get("instead_of"):
            acc["routed_to_small"] += 1
        for b in ("low", "mid", "high"):
            acc["energy_saved_wh"][b] += float((routing.get("energy_saved_wh") or {}).get(b, 0.0))
    m = fp.get("method")
    if m in acc["methods"]:
        acc["methods"][m] += 1
    for q, paths in QUANTITIES.items():
        for path in paths:
            iv = _dig(fp, path)
            if isinstance(iv, dict):
                for b in ("low", "mid", "high"):
                    acc[q][b] += float(iv.get(b, 0.0))


def summarise(records: Iterable[dict[str, Any]], by: str | None = None) -> dict[str, Any]:
    """{"total": totals, "groups": {key: totals}} for the records, grouped by `by` (see KEYS)."""
    if by is not None:
        check_key(by)
    total, groups = empty(), dict[str, dict[str, Any]]()
    versions: set[str] = set()
    for r in records:
        add(total, r)
        if r.get("factors_version"):
            versions.add(str(r["factors_version"]))
        if by:
            add(groups.setdefault(key_of(r, by), empty()), r)
    out = dict(sorted(groups.items()))
    if by and by.startswith(TAG_PREFIX):
        out = collapse(out)
    return {"total": total, "groups": out, "by": by, "factors_versions": sorted(versions)}
