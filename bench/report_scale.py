"""Report time over 10 million ledger records: DuckDB over the Parquet export vs the Python path.

    python bench/report_scale.py [--records 10000000] [--runs 3]

The demo ledger (the Azure trace, 28,185 estimated receipts) is exported to Parquet and tiled,
with shifted timestamps, up to the requested size; the report is then built from it. Both paths
are timed `--runs` times, interleaved; cells are the median and range.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import load, spread, table, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from wattlens.ledger import open_ledger
    from wattlens.ledger.export import export
    from wattlens.report import build
    from wattlens.report.columnar import build_from_parquet
    from wattlens.report.demo import write_demo

    tmp = Path(tempfile.mkdtemp())
    try:
        db = tmp / "demo.db"
        write_demo(
            str(db), ["gpt-4o-mini", "claude-haiku-4-5", "meta-llama/Meta-Llama-3.1-8B-Instruct"], ["FR", "US-VA", "PL"]
        )
        led = open_ledger(db)
        base = tmp / "base.parquet"
        export(led.records(), "parquet", str(base))
        led.close()
        tab = pq.read_table(base)
        n_base = tab.num_rows
        copies = max(1, -(-args.records // n_base))
        big = tmp / "big.parquet"
        with pq.ParquetWriter(big, tab.schema) as w:
            for i in range(copies):
                day = f"2026-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}"
                ts = pc.binary_join_element_wise(pa.array([day] * n_base), pc.utf8_slice_codeunits(tab["ts"], 10), "")
                w.write_table(tab.set_column(tab.schema.get_field_index("ts"), "ts", ts))
        rows = copies * n_base
        load_before = load()
        py_s, duck_s = [], []
        for _ in range(args.runs):
            led = open_ledger(db)
            t = time.perf_counter()
            py_report = build(led.records(), ["model", "team", "zone", "day"])
            py_s.append(time.perf_counter() - t)
            led.close()
            t = time.perf_counter()
            r = build_from_parquet(big, ["model", "team", "zone", "day"])
            duck_s.append(time.perf_counter() - t)
            assert r.total["requests"] == rows
        body = table(
            ["path", "records", "seconds", "records per second"],
            [
                [
                    "Python build() over the SQLite ledger",
                    f"{n_base:,}",
                    spread(py_s, ".2f"),
                    spread([n_base / x for x in py_s], ",.0f"),
                ],
                [
                    "DuckDB over the Parquet export",
                    f"{rows:,}",
                    spread(duck_s, ".2f"),
                    spread([rows / x for x in duck_s], ",.0f"),
                ],
                ["Python path, extrapolated", f"{rows:,}", spread([x / n_base * rows for x in py_s], ".0f"), "-"],
            ],
        )
        body += (
            f"\n\nBreakdowns by model, team, zone and day; the Parquet file holds {copies} shifted copies of the "
            f"demo export ({(big.stat().st_size / 1e6):.0f} MB). Python report totals on the demo: "
            f"{py_report.total['energy_wh']['mid']:.1f} Wh. Median (range) of {args.runs} interleaved runs; "
            f"load average before: {load_before}; after: {load()}."
        )
        write(
            "report_scale.md",
            "Report over 10 million records",
            body,
            f"python bench/report_scale.py --records {args.records}",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
