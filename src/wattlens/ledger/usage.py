"""What budgets read back from a ledger: a record reduced to its owner, tags, time and receipt mids.

The database extracts these fields from each stored record (SQLite's and PostgreSQL's JSON functions
run in C, outside Python's lock), so a gateway counting its replicas' use never decodes whole records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

# JSON paths, in the order usage_record reads them.
USAGE_PATHS = (
    "$.id",
    "$.ts",
    "$.key_id",
    "$.team",
    "$.user",
    "$.tags",
    "$.footprint.energy_wh.mid",
    "$.footprint.facility_wh.mid",
    "$.footprint.carbon_g.location.mid",
    "$.footprint.carbon_g.market.mid",
    "$.footprint.water_ml.onsite.mid",
    "$.footprint.water_ml.offsite.mid",
)


def _num(v: Any) -> float:
    try:
        return float(v) if v is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def usage_record(v: Sequence[Any]) -> dict[str, Any]:
    """The extracted values as a record of the ledger's shape (a receipt with its mids only, or none)."""
    rid, ts, key_id, team, user, tags, e, f, cl, cm, wo, wf = v
    if isinstance(tags, str):  # SQLite returns a JSON object as its text
        try:
            tags = json.loads(tags)
        except ValueError:
            tags = {}
    fp = None
    if e is not None:
        fp = {
            "energy_wh": {"mid": _num(e)},
            "facility_wh": {"mid": _num(f)},
            "carbon_g": {"location": {"mid": _num(cl)}, "market": {"mid": _num(cm)}},
            "water_ml": {"onsite": {"mid": _num(wo)}, "offsite": {"mid": _num(wf)}},
        }
    return {
        "id": rid,
        "ts": ts,
        "key_id": key_id,
        "team": team,
        "user": user,
        "tags": tags if isinstance(tags, dict) else {},
        "footprint": fp,
    }


def postgres_columns() -> str:
    """The same paths as PostgreSQL expressions on `j`, the record as jsonb (text, numbers as text; tags as jsonb)."""

    def expr(path: str) -> str:
        parts = path[2:].split(".")
        keys = ",".join(parts)
        return f"(j #> '{{{keys}}}')" if parts == ["tags"] else f"(j #>> '{{{keys}}}')"

    return ", ".join(expr(p) for p in USAGE_PATHS)
