"""How long `import wattlens` takes, against bare Python and the peers' imports.

python bench/import_time.py [--runs 30]

The targets are interleaved (one start of each, in turn, `--runs` times), so a burst of other work
on the machine touches all of them alike; each cell is the median of the runs and their range.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time

from common import load, spread, table, write


def wall_ms(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - t0) * 1000


def self_import_ms(module: str) -> float:
    """Cumulative time of the module's own import line in -X importtime (excludes interpreter start)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    ).stderr
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| " + re.escape(module) + r"$", line)
        if m:
            return int(m.group(1)) / 1000
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    mods = [m for m in ("wattlens", "ecologits", "codecarbon") if importlib.util.find_spec(m) is not None]
    missing = [m for m in ("wattlens", "ecologits", "codecarbon") if m not in mods]
    walls: dict[str, list[float]] = {"pass": [], **{m: [] for m in mods}}
    added: dict[str, list[float]] = {m: [] for m in mods}
    own: dict[str, list[float]] = {m: [] for m in mods}
    load_before = load()
    for _ in range(args.runs):
        base = wall_ms("pass")
        walls["pass"].append(base)
        for m in mods:
            w = wall_ms(f"import {m}")
            walls[m].append(w)
            added[m].append(w - base)  # against the bare start of the same round
            own[m].append(self_import_ms(m))
    rows = [["bare `python -c pass`", spread(walls["pass"]), "-", "-", "-"]]
    for m in mods:
        ratio = "-"
        if m != "wattlens" and "wattlens" in mods:
            ratio = spread([o / w for o, w in zip(own[m], own["wattlens"], strict=True)], ".0f") + "×"
        rows.append([f"`import {m}`", spread(walls[m]), spread(added[m]), spread(own[m]), ratio])
    rows += [[f"`import {m}`", "not installed", "-", "-", "-"] for m in missing]
    body = table(
        [
            "what",
            "wall ms",
            "added over bare Python (same round), ms",
            "-X importtime cumulative, ms",
            "importtime ÷ wattlens's",
        ],
        rows,
    )
    body += (
        f"\n\nMedian (range) of {args.runs} interleaved rounds, each one fresh interpreter start per target. "
        f"Load average before: {load_before}; after: {load()}."
    )
    write("import_time.md", "Import time", body, "python bench/import_time.py --runs " + str(args.runs))


if __name__ == "__main__":
    main()
