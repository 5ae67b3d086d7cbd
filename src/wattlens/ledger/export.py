"""Ledger export: CSV (flattened receipt mids and bounds), JSON lines, Parquet (needs pyarrow).

CSV and Parquet always carry their columns (COLUMNS), even with no records, so a tool that
imports them sees the layout; JSON lines have no header by nature.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from typing import Any

from wattlens.errors import InputError
from wattlens.ledger.summary import hosting_of

FORMATS = ("csv", "jsonl", "parquet")
IDENTIFIERS = (
    "id",
    "ts",
    "endpoint",
    "model_requested",
    "model_served",
    "upstream",
    "status",
    "outcome",
    "stream",
    "latency_s",
    "ttft_s",
    "key_id",
    "team",
    "user",
    "factors_version",
)
TOKENS = ("input", "cached_input", "output", "reasoning")
RECEIPT_QUANTITIES = (
    "energy_wh",
    "facility_wh",
    "carbon_location_g",
    "carbon_market_g",
    "carbon_embodied_g",
    "water_onsite_ml",
    "water_offsite_ml",
)
# Every column of a CSV or Parquet export, in order, with its Arrow type name.
COLUMNS: dict[str, str] = {
    **{
        k: ("int64" if k == "status" else "bool_" if k == "stream" else "float64" if k.endswith("_s") else "string")
        for k in IDENTIFIERS
    },
    **{f"tokens_{t}": "int64" for t in TOKENS},
    **{f"{q}_{b}": "float64" for q in RECEIPT_QUANTITIES for b in ("low", "mid", "high")},
    "zone": "string",
    "method": "string",
    "hosting": "string",
    "intensity_g_per_kwh": "float64",
    "tags": "string",  # the record's free-form tags as a JSON object
    "footprint_error": "string",
}


def flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """One row per record: identifiers, tokens, and each receipt quantity as low/mid/high."""
    row = {k: rec.get(k) for k in IDENTIFIERS}
    tokens = rec.get("tokens") or {}
    for t in TOKENS:
        row[f"tokens_{t}"] = tokens.get(t)
    fp = rec.get("footprint") or {}
    quantities = {
        "energy_wh": fp.get("energy_wh"),
        "facility_wh": fp.get("facility_wh"),
        "carbon_location_g": (fp.get("carbon_g") or {}).get("location"),
        "carbon_market_g": (fp.get("carbon_g") or {}).get("market"),
        "carbon_embodied_g": (fp.get("carbon_g") or {}).get("embodied"),
        "water_onsite_ml": (fp.get("water_ml") or {}).get("onsite"),
        "water_offsite_ml": (fp.get("water_ml") or {}).get("offsite"),
    }
    for name, iv in quantities.items():
        for b in ("low", "mid", "high"):
            row[f"{name}_{b}"] = iv.get(b) if iv else None
    grid = fp.get("grid") or {}
    row["zone"], row["method"] = grid.get("zone"), fp.get("method")
    row["hosting"] = hosting_of(rec)
    row["intensity_g_per_kwh"] = grid.get("intensity_g_per_kwh")
    tags = rec.get("tags")
    row["tags"] = json.dumps(tags, sort_keys=True, ensure_ascii=False) if tags else None
    row["footprint_error"] = rec.get("footprint_error")
    return row


def export(records: Iterable[dict[str, Any]], fmt: str, path: str | None) -> int:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        return _parquet(records, path)
    out = open(path, "w", newline="", encoding="utf-8") if path else sys.stdout  # noqa: SIM115
    n = 0
    try:
        if fmt == "jsonl":
            for r in records:
                out.write(json.dumps(r, separators=(",", ":")) + "\n")
                n += 1
        else:
            writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
            writer.writeheader()
            for r in records:
                writer.writerow(flatten(r))
                n += 1
    finally:
        if path:
            out.close()
    return n


def _parquet(records: Iterable[dict[str, Any]], path: str | None) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise InputError("Parquet export needs pyarrow: pip install 'wattlens[parquet]'") from e
    if not path:
        raise InputError("Parquet is binary: give --output FILE")
    rows = [flatten(r) for r in records]
    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return len(rows)
