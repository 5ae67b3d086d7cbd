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

    root = Path(__file__).resolve().parents[1]
    sample = [r["prompt"] for r in csv.DictReader((root / "tests" / "data" / "router_sample.csv").open())]
    everyday = csv.DictReader((root / "fit" / "router" / "everyday_chat.csv").open())
    chat = [r["prompt"] for r in everyday if r["split"] == "eval"]
    rows = []
    for label, prompts, two_stage in (
        ("two stages (default), GSM8K/MMLU sample", sample, True),
        ("two stages (default), everyday-chat evaluation prompts", chat, True),
        ("every request embedded (embed_all), GSM8K/MMLU sample", sample, False),
    ):
        router = Router(Artefact.load(), two_stage=two_stage)
        router.decide("warm up")
        times = []
        for i in range(args.n):
            msgs = [{"role": "user", "content": prompts[i % len(prompts)]}]
            t = time.perf_counter()
            router.decide(msgs)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        rows.append([label, f"{statistics.median(times):.2f}", f"{times[int(len(times) * 0.99) - 1]:.2f}", str(args.n)])
    write(
        "route.md",
        "Routing decision latency",
        table(["what", "p50 ms", "p99 ms", "decisions"], rows)
        + "\n\nOne decision at a time on the CPU (MiniLM embedding when needed, cheap features, logistic heads); "
        "prompts from tests/data/router_sample.csv and the evaluation split of fit/router/everyday_chat.csv.",
        f"python bench/route.py --n {args.n}",
    )


if __name__ == "__main__":
    main()
