"""Publish the router's evaluation and ship its artefact.

    python fit/router/run.py [--data ../shared/data/routellm_evals/router_dev.csv]

Embeds every prompt once (cached in .cache/), picks the L2 strength by 5-fold cross-validation,
writes fit/router/eval.json, docs/figures/router.png and src/wattlens/route/router-v1.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from wattlens.route.train import evaluate, features, load, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "routellm_evals" / "router_dev.csv"))
    ap.add_argument("--quality", type=float, default=0.95)
    args = ap.parse_args()
    d = load(args.data)
    cache = ROOT / ".cache" / f"router_x_{d.digest}.npy"
    if cache.exists():
        x = np.load(cache)
    else:
        x = features(d.prompts, progress=print)
        cache.parent.mkdir(exist_ok=True)
        np.save(cache, x)
    results = {}
    for l2 in (1.0, 10.0, 30.0, 100.0, 300.0):
        results[l2] = evaluate(d, x, args.quality, l2=l2)
        print(f"l2={l2:g}: share large {results[l2]['router']['share_large']:.3f}")
    best_l2 = min(results, key=lambda k: results[k]["router"]["share_large"])
    best = results[best_l2]
    best["l2"] = best_l2
    art = train(d, x, args.quality, best, l2=best_l2)
    art.save(ROOT / "src" / "wattlens" / "route" / "router-v1.json")
    (ROOT / "fit" / "router" / "eval.json").write_text(json.dumps(best, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    acc_s, acc_l = best["accuracy"]["small"], best["accuracy"]["large"]
    for name, rows in best["curves"].items():
        axes[0].plot([r["share_large"] for r in rows], [r["accuracy"] for r in rows], label=name.replace("_", " "))
        e0 = best["always_large"]["energy_wh"]
        axes[1].plot([r["energy_wh"] / e0 for r in rows], [r["accuracy"] for r in rows], label=name.replace("_", " "))
    axes[0].plot([0, 1], [acc_s, acc_l], "--", color="grey", label="random")
    axes[0].scatter([best["oracle"]["share_large"]], [best["oracle"]["accuracy"]], color="k", label="oracle", zorder=3)
    for ax in axes:
        ax.axhline(best["target_accuracy"], color="red", lw=0.8, ls=":", label=f"{args.quality:.0%} of large")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
    axes[0].set_xlabel("share of requests sent to the large model")
    axes[1].set_xlabel("energy relative to always-large (estimator, facility Wh)")
    fig.suptitle(f"Router on {best['n']:,} prompts (GSM8K + MMLU), 5-fold cross-validation", fontsize=10)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "figures" / "router.png")
    print(json.dumps({k: v for k, v in best.items() if k != "curves"}, indent=1))


if __name__ == "__main__":
    main()
