"""Time one routing decision (embedding + features + head) on CPU, p50 and p99.

python bench/route.py [--n 300]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from common import table, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    from wattlens.route import Artefact, Router

    sample = Path(__file__).resolve().parents[1] / "tests" / "data" / "router_sample.csv"
    prompts = [r["prompt"] for r in csv.DictReader(sample.open())]
    router = Router(Artefact.load())
    router.decide("warm up")
    times = []
    for i in range(args.n):
        msgs = [{"role": "user", "content": prompts[i % len(prompts)]}]
        t = time.perf_counter()
        router.decide(msgs)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    rows = [
        [
            "routing decision (MiniLM embedding + features + logistic head)",
            f"{statistics.median(times):.2f}",
            f"{times[int(len(times) * 0.99) - 1]:.2f}",
            str(args.n),
        ]
    ]
    write(
        "route.md",
        "Routing decision latency",
        table(["what", "p50 ms", "p99 ms", "decisions"], rows)
        + "\n\nPrompts from tests/data/router_sample.csv (GSM8K and MMLU), one at a time, on the CPU.",
        f"python bench/route.py --n {args.n}",
    )


if __name__ == "__main__":
    main()
