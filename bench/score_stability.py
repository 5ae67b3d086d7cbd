"""Energy Score stability: the same score idle and beside a CPU burner, before and after, in the same run.

    git worktree add /tmp/base-score <previous commit>
    python bench/score_stability.py --before /tmp/base-score [--samples 30 --repetitions 2]

Each score is `wattlens score all-MiniLM-L6-v2 --task sentence-similarity --json` (the built-in model,
offline) run from a checkout's src/ with this venv's Python. "Beside a CPU burner": one process per
hardware thread spinning `while True: pass` for the whole score. The runs interleave (before idle,
after idle, before loaded, after loaded, then again) so slow drift of the shared machine hits both.
The spread of a version is |loaded - idle| / idle of the median Wh per 1,000 queries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import table, write

ROOT = Path(__file__).resolve().parents[1]
BURN = "while True: pass"
# CPU time of one MiniLM query (a sentence pair, batch size 1) under a given OpenMP wait policy.
PER_QUERY = """
import json, time, torch
from sentence_transformers import SentenceTransformer
from wattlens.gateway.local import embedding_model_path
from wattlens.score import samples
st = SentenceTransformer(embedding_model_path(), device="cpu")
items = samples("sentence-similarity", 40)
for p in items[:5]:
    st.encode([p[0]]); st.encode([p[1]])
c0, t0 = time.process_time(), time.perf_counter()
with torch.no_grad():
    for p in items:
        st.encode([p[0]]); st.encode([p[1]])
n = len(items)
print(json.dumps({"cpu_ms": (time.process_time() - c0) / n * 1e3, "wall_ms": (time.perf_counter() - t0) / n * 1e3}))
"""


def score(tree: Path, samples: int, repetitions: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_WAIT_POLICY", None)  # each version chooses for itself
    cmd = [sys.executable, "-m", "wattlens.cli", "score", "all-MiniLM-L6-v2", "--task", "sentence-similarity"]
    cmd += ["--samples", str(samples), "--repetitions", str(repetitions), "--json"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"score failed in {tree}:\n{r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    out["wall_s"] = time.perf_counter() - t0
    out["load1"] = os.getloadavg()[0]
    return out


class Burners:
    """One process per hardware thread spinning in pure Python while the block runs (none when off)."""

    def __init__(self, on: bool) -> None:
        self.on, self.procs = on, list[subprocess.Popen[bytes]]()

    def __enter__(self) -> None:
        if self.on:
            self.procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 1)]
            time.sleep(1.0)  # let the burners take their share of the cores

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def run(tree: Path, loaded: bool, samples: int, repetitions: int) -> dict[str, object]:
    with Burners(loaded):
        return score(tree, samples, repetitions)


def per_query(policy: str | None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    with Burners(True):
        r = subprocess.run([sys.executable, "-c", PER_QUERY], env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"per-query check failed:\n{r.stderr[-2000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the previous commit")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--repetitions", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="idle/loaded pairs per version")
    a = ap.parse_args()
    versions = {"before": a.before.resolve(), "after": ROOT}
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    for _ in range(a.rounds):
        for cond in ("idle", "loaded"):
            for name, tree in versions.items():
                r = run(tree, cond == "loaded", a.samples, a.repetitions)
                print(f"{name:6} {cond:6} {r['wh_per_1000']:.4g} Wh/1000  wall {r['wall_s']:.0f} s", file=sys.stderr)
                results.setdefault((name, cond), []).append(r)
    rows, spreads = [], {}
    for name in versions:
        med = {c: statistics.median(float(str(r["wh_per_1000"])) for r in results[(name, c)]) for c in ("idle", "loaded")}
        spreads[name] = abs(med["loaded"] - med["idle"]) / med["idle"]
        for cond in ("idle", "loaded"):
            rs = results[(name, cond)]
            rows.append(
                [
                    name,
                    cond,
                    ", ".join(f"{float(str(r['wh_per_1000'])):.3g}" for r in rs),
                    f"{med[cond]:.3g}",
                    ", ".join("★" * int(str(r["stars"])) for r in rs),
                    ", ".join(f"{float(str(r['wall_s'])):.0f}" for r in rs),
                    ", ".join(f"{float(str(r['load1'])):.1f}" for r in rs),
                    f"{spreads[name]:.1%}" if cond == "loaded" else "",
                ]
            )
    after = results[("after", "idle")][0]
    body = table(
        ["version", "condition", "Wh per 1,000 queries (each round)", "median", "stars", "wall s", "load avg", "spread"],
        rows,
    )
    body += (
        f"\n\nSpread |loaded - idle| / idle of the medians: before **{spreads['before']:.1%}**, "
        f"after **{spreads['after']:.1%}** (target ≤ 10 %).\n\n"
        f"After: charged {after.get('attribution', '?')}; measured on {after.get('hardware_class', '?')}; "
        f"stars {after.get('comparability', '?')}.\n\n"
        "Before: the fallback model charged the whole host (idle power x wall time + every busy CPU-second on "
        "the machine). 'idle' is this shared machine as it was (other work ran; see the load average)."
    )
    spin = {name: per_query(policy) for name, policy in (("default (threads spin)", None), ("PASSIVE", "PASSIVE"))}
    body += "\n\nOne MiniLM query (a sentence pair, batch size 1) beside the burner, by OpenMP wait policy:\n\n"
    body += table(
        ["OMP_WAIT_POLICY", "CPU ms per query", "wall ms per query"],
        [[k, f"{v['cpu_ms']:.1f}", f"{v['wall_ms']:.1f}"] for k, v in spin.items()],
    )
    cmd = f"python bench/score_stability.py --before {a.before} --samples {a.samples} --repetitions {a.repetitions}"
    write("score_stability.md", "Energy Score stability under unrelated load", body, cmd)


if __name__ == "__main__":
    main()
