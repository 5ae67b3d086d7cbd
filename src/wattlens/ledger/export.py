"""Ledger export: CSV (flattened receipt mids and bounds), JSON lines, Parquet (needs pyarrow)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from typing import Any

from wattlens.errors import InputError
from wattlens.ledger.summary import hosting_of

FORMATS = ("csv", "jsonl", "parquet")


def flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """One row per record: identifiers, tokens, and each receipt quantity as low/mid/high."""
    row = {
        k: rec.get(k)
        for k in (
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
    }
    for k, v in (rec.get("tokens") or {}).items():
        row[f"tokens_{k}"] = v
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
            writer: csv.DictWriter[str] | None = None
            for r in records:
                row = flatten(r)
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                    writer.writeheader()
                writer.writerow(row)
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
    pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)
