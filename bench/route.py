"""Time one routing decision (embedding + features + head) on CPU: p50 and p99 over several runs.

python bench/route.py [--n 300] [--runs 3] [--threads 2,1] [--base /tmp/route-base] [--embedders int8,fp32]

Each (code, torch threads) pair runs in its own process: `--base` names a work tree of an earlier
commit (`git worktree add /tmp/route-base HEAD`) whose router is measured by the same loop in the
same run. A process warms its router first (`Router.warm()` where the code has it; an earlier
router without it loads the embedder inside its first timed embedded decision, as the gateway
did). `--embedders` measures this commit's router once per embedding model ("int8", the default,
and "fp32", the opt-out); the base runs with its own default. The table gives the median of the
runs and their range, and the load average beside it.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    ("sample", True, "two stages (default), GSM8K/MMLU sample"),
    ("chat", True, "two stages (default), everyday-chat evaluation prompts"),
    ("sample", False, "every request embedded (embed_all), GSM8K/MMLU sample"),
)


def pct(times: list[float], q: float) -> float:
    s = sorted(times)
    return s[max(int(len(s) * q) - 1, 0)]


def worker(n: int, runs: int, threads: int, kind: str) -> None:
    """Print one JSON line per run: for each row its decision times (ms), stages and token counts."""
    import torch

    torch.set_num_threads(threads)
    from wattlens.route import Artefact, Router, embedder

    prompts = {
        "sample": [r["prompt"] for r in csv.DictReader((ROOT / "tests" / "data" / "router_sample.csv").open())],
        "chat": [
            r["prompt"]
            for r in csv.DictReader((ROOT / "fit" / "router" / "everyday_chat.csv").open())
            if r["split"] == "eval"
        ],
    }
    params = inspect.signature(Router).parameters
    kw: dict[str, object] = {"threads": threads} if "threads" in params else {}  # else the router would set its own
    if kind and "embedder" in params:
        kw["embedder"] = kind
    routers = {two: Router(Artefact.load(), two_stage=two, **kw) for two in (True, False)}  # type: ignore[arg-type]
    for r in routers.values():
        if hasattr(r, "warm"):
            r.warm()
    ntok: dict[str, int] = {}
    for run in range(runs):
        out: dict[str, object] = {"run": run, "load_before": os.getloadavg()[0]}
        for key, two, label in ROWS:
            router, ps = routers[two], prompts[key]
            times, stages = [], []
            for i in range(n):
                msgs = [{"role": "user", "content": ps[i % len(ps)]}]
                t = time.perf_counter()
                d = router.decision(msgs)
                times.append((time.perf_counter() - t) * 1000)
                stages.append(d.stage)
            # after the row: counting tokens loads the embedder, which a cold router must load on the clock
            for p in ps[:n]:
                if p not in ntok:
                    ntok[p] = len(embedder().tokenizer(p[-4000:], truncation=True, max_length=256)["input_ids"])
            toks = [ntok[ps[i % len(ps)]] for i in range(n)]
            out[label] = {"times": times, "stages": stages, "tokens": toks}
        out["load_after"] = os.getloadavg()[0]
        print(json.dumps(out), flush=True)


def measure(src: Path, n: int, runs: int, threads: int, kind: str) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", "--n", str(n), "--runs", str(runs), "--threads", str(threads)]
    cmd += ["--embedder", kind] if kind else []
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"worker for {src} failed:\n{res.stderr[-3000:]}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="decisions per row and run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="2,1", help="torch intra-op threads to measure, comma-separated")
    ap.add_argument("--base", type=Path, help="work tree of an earlier commit, measured in the same run")
    ap.add_argument("--embedders", default="int8,fp32", help="this commit's router embedders to measure")
    ap.add_argument("--embedder", default="", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.n, args.runs, int(args.threads), args.embedder)
        return
    from common import table, write

    codes = [(f"this commit, {k}", ROOT / "src", k) for k in args.embedders.split(",") if k]
    if args.base:
        rev = subprocess.run(["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        codes.insert(0, (f"previous ({rev.stdout.strip() or args.base})", args.base / "src", ""))
    rows, tails, loads = [], [], []
    for threads in [int(t) for t in args.threads.split(",")]:
        for name, src, kind in codes:
            results = measure(src, args.n, args.runs, threads, kind)
            load = [float(r["load_before"]) for r in results] + [float(r["load_after"]) for r in results]  # type: ignore[arg-type]
            loads += load
            for _key, _two, label in ROWS:
                runs = [r[label] for r in results]
                p50 = [pct(x["times"], 0.5) for x in runs]  # type: ignore[index]
                p99 = [pct(x["times"], 0.99) for x in runs]  # type: ignore[index]
                emb = [sum(s == "embedded" for s in x["stages"]) / len(x["stages"]) for x in runs]  # type: ignore[index]
                share = f"{100 * statistics.median(emb):.0f} %"
                rows.append([name, str(threads), label, spread(p50), spread(p99), share, f"{min(load):.2f}–{max(load):.2f}"])
            # the tail by prompt length: embedded decisions of the default router on the sample
            label = ROWS[0][2]
            for lo, hi in ((0, 64), (64, 128), (128, 257)):
                med, p99s, cnt = [], [], 0
                for r in results:
                    x = r[label]
                    both = zip(x["times"], x["stages"], x["tokens"], strict=True)  # type: ignore[index]
                    ts = [t for t, s, k in both if s == "embedded" and lo <= k < hi]
                    if ts:
                        med.append(statistics.median(ts))
                        p99s.append(pct(ts, 0.99))
                        cnt = len(ts)
                if med:
                    tails.append([name, str(threads), f"{lo}–{hi - 1}", str(cnt), spread(med), spread(p99s)])
    body = (
        table(["code", "torch threads", "what", "p50 ms", "p99 ms", "embedded", "load avg (1 min)"], rows)
        + f"\n\n{args.runs} runs of {args.n} decisions per row: median (range) of the runs' p50 and p99. "
        "One decision at a time on the CPU (MiniLM embedding when needed, cheap features, logistic heads); "
        "prompts from tests/data/router_sample.csv and the evaluation split of fit/router/everyday_chat.csv.\n\n"
        "Embedded decisions of the default router on the GSM8K/MMLU sample, by the prompt's length in MiniLM "
        "tokens (truncated at 256), median (range) over the runs:\n\n"
        + table(["code", "torch threads", "tokens", "decisions a run", "p50 ms", "p99 ms"], tails)
        + f"\n\nLoad average (1 min) over the whole measurement: {min(loads):.2f}–{max(loads):.2f} "
        f"on {os.cpu_count()} cores."
    )
    cmd = f"python bench/route.py --n {args.n} --runs {args.runs} --threads {args.threads} --embedders {args.embedders}"
    write("route.md", "Routing decision latency", body, cmd + (f" --base {args.base}" if args.base else ""))


if __name__ == "__main__":
    main()
