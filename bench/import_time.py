"""How long `import wattlens` takes, against bare Python and the peers' imports.

python bench/import_time.py [--runs 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import time

from common import table, write


def wall_ms(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def self_import_ms(module: str, runs: int) -> float:
    """Cumulative time of the module's own import line in -X importtime (excludes interpreter start)."""
    vals = []
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
        ).stderr
        for line in err.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| " + re.escape(module) + r"$", line)
            if m:
                vals.append(int(m.group(1)) / 1000)
    return statistics.median(vals)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    base = wall_ms("pass", args.runs)
    rows = [["bare `python -c pass`", f"{base:.1f}", "-", "-"]]
    for mod in ("wattlens", "ecologits", "codecarbon"):
        if importlib.util.find_spec(mod) is None:
            rows.append([f"`import {mod}`", "not installed", "-", "-"])
            continue
        w = wall_ms(f"import {mod}", args.runs)
        rows.append([f"`import {mod}`", f"{w:.1f}", f"{w - base:.1f}", f"{self_import_ms(mod, args.runs):.1f}"])
    body = table(["what", "wall ms (median)", "added over bare Python, ms", "-X importtime cumulative, ms"], rows)
    body += f"\n\nMedians of {args.runs} fresh interpreter starts each."
    write("import_time.md", "Import time", body, "python bench/import_time.py --runs " + str(args.runs))


if __name__ == "__main__":
    main()
