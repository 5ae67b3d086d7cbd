"""Train and evaluate the router on a CSV of prompts with per-model correctness.

Columns: prompt, weak_correct, strong_correct (True/False); optional: dataset.
Label: the small (weak) model is good enough when it is right or the large one is wrong too.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlens.errors import InputError
from wattlens.route import ARTEFACT_VERSION, Artefact, cheap_features, design, embed

SMALL, LARGE = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-turbo"
OUTPUT_TOKENS = 150  # assumed answer length for the energy of a request (GSM8K answers; MMLU with reasoning)
CHEAP_BAND = (0.2, 0.6)  # quantiles of the first stage's probability outside which it decides alone


@dataclass(frozen=True)
class Data:
    prompts: list[str]
    weak: Any  # numpy bool arrays
    strong: Any
    digest: str


def _bool(v: str, where: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise InputError(f"{where}: expected True or False, got {v!r}")


def load(path: str | Path, limit: int | None = None) -> Data:
    import numpy as np

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror}") from e
    rows = list(csv.DictReader(text.splitlines(keepends=True)))
    if not rows or not {"prompt", "weak_correct", "strong_correct"} <= set(rows[0]):
        raise InputError(f"{p}: needs columns prompt, weak_correct, strong_correct")
    rows = rows[:limit] if limit else rows
    weak = np.array([_bool(r["weak_correct"], f"{p} line {i + 2}") for i, r in enumerate(rows)])
    strong = np.array([_bool(r["strong_correct"], f"{p} line {i + 2}") for i, r in enumerate(rows)])
    return Data([r["prompt"] for r in rows], weak, strong, hashlib.sha256(text.encode()).hexdigest()[:16])


def features(prompts: Sequence[str], progress: Callable[[str], None] | None = None) -> Any:
    if progress:
        progress(f"embedding {len(prompts)} prompts with all-MiniLM-L6-v2 on CPU")
    return design(embed([p[-4000:] for p in prompts]), [cheap_features(p) for p in prompts])


def fit_logistic(x: Any, y: Any, l2: float = 1.0, iters: int = 25) -> tuple[Any, float, Any, Any]:
    """L2-regularised logistic regression by Newton's method on standardised features."""
    import numpy as np

    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (p - y) + reg * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w[:-1], float(w[-1]), mean, std


def predict(x: Any, w: Any, b: float, mean: Any, std: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-(((x - mean) / std) @ w + b)))


def energy_per_request(prompts: Sequence[str]) -> tuple[Any, Any]:
    """Estimator energy (facility Wh, mid) of each prompt on the small and on the large model."""
    import numpy as np

    from wattlens.receipt import LLMRequest, estimate_footprint

    def wh(model: str, p: str) -> float:
        tokens = max(1, round(len(p.split()) * 1.3))
        return estimate_footprint(
            LLMRequest(model=model, input_tokens=tokens, output_tokens=OUTPUT_TOKENS), embodied=False
        ).facility_wh.mid

    return np.array([wh(SMALL, p) for p in prompts]), np.array([wh(LARGE, p) for p in prompts])


def curve(score: Any, weak: Any, strong: Any, e_small: Any, e_large: Any) -> list[dict[str, float]]:
    """Route to large when P(small ok) is below t, for every t: share of large calls, accuracy, energy."""
    import numpy as np

    order = np.argsort(score)  # least confident first: these go to the large model first
    n = len(score)
    rows = []
    for k in range(0, n + 1, max(1, n // 200)):
        to_large = np.zeros(n, dtype=bool)
        to_large[order[:k]] = True
        correct = np.where(to_large, strong, weak)
        energy = np.where(to_large, e_large, e_small)
        # The runtime rule is "small when p >= threshold": the first score that stays small.
        threshold = float(score[order[k]]) if k < n else float("inf")
        rows.append(
            {
                "share_large": k / n,
                "accuracy": float(correct.mean()),
                "energy_wh": float(energy.sum()),
                "threshold": threshold,
            }
        )
    return rows


def at_share(rows: list[dict[str, float]], share: float) -> dict[str, float]:
    """The best accuracy with at most this share of large-model calls."""
    ok = [r for r in rows if r["share_large"] <= share]
    return max(ok, key=lambda r: r["accuracy"]) if ok else rows[0]


def at_quality(rows: list[dict[str, float]], target: float) -> dict[str, float]:
    ok = [r for r in rows if r["accuracy"] >= target]
    return min(ok, key=lambda r: r["share_large"]) if ok else rows[-1]


def evaluate(data: Data, x: Any, quality: float = 0.95, folds: int = 5, seed: int = 7, l2: float = 30.0) -> dict[str, Any]:
    """K-fold cross-validated curves for the router and the baselines, and the point at the quality floor."""
    import numpy as np

    n = len(data.prompts)
    y = (data.weak | ~data.strong).astype(float)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % folds
    score = np.zeros(n)
    for k in range(folds):
        tr, te = fold != k, fold == k
        w, b, m, s = fit_logistic(x[tr], y[tr], l2)
        score[te] = predict(x[te], w, b, m, s)
    n_cheap = len(cheap_features("x"))
    p1 = np.zeros(n)
    for k in range(folds):
        tr, te = fold != k, fold == k
        w, b, m, s = fit_logistic(x[tr][:, -n_cheap:], y[tr], 1.0)
        p1[te] = predict(x[te][:, -n_cheap:], w, b, m, s)
    lo, hi = float(np.quantile(p1, CHEAP_BAND[0])), float(np.quantile(p1, CHEAP_BAND[1]))
    early_small, early_large = p1 >= hi, p1 <= lo
    # Two stages as one score: confident first-stage answers sit above or below every second-stage score.
    two = score.copy()
    two[early_small] = 1.0 + p1[early_small]
    two[early_large] = -1.0 + p1[early_large]
    e_small, e_large = energy_per_request(data.prompts)
    acc_large, acc_small = float(data.strong.mean()), float(data.weak.mean())
    target = quality * acc_large
    two_rows = curve(two, data.weak, data.strong, e_small, e_large)
    router = curve(score, data.weak, data.strong, e_small, e_large)
    length = curve(-x[:, -len(cheap_features("x"))], data.weak, data.strong, e_small, e_large)  # long -> large
    oracle_large = ~data.weak & data.strong
    random_share = (target - acc_small) / (acc_large - acc_small) if acc_large > acc_small else 0.0
    best = at_quality(router, target)
    e_all_large = float(e_large.sum())
    return {
        "n": n,
        "folds": folds,
        "quality": quality,
        "target_accuracy": target,
        "accuracy": {"small": acc_small, "large": acc_large},
        "router": {
            **best,
            "energy_saved_wh": e_all_large - best["energy_wh"],
            "energy_saved_share": 1 - best["energy_wh"] / e_all_large,
            "energy_saved_wh_per_request": (e_all_large - best["energy_wh"]) / n,
        },
        "two_stage": {
            **at_quality(two_rows, target),
            "decided_early": float((early_small | early_large).mean()),
            "cheap_lo": lo,
            "cheap_hi": hi,
            "energy_saved_share": 1 - at_quality(two_rows, target)["energy_wh"] / float(e_large.sum()),
        },
        "random": {"share_large": max(0.0, min(1.0, random_share))},
        "length_rule": at_quality(length, target),
        "oracle": {
            "share_large": float(oracle_large.mean()),
            "accuracy": float(np.where(oracle_large, data.strong, data.weak).mean()),
        },
        "always_small": {"share_large": 0.0, "accuracy": acc_small, "energy_wh": float(e_small.sum())},
        "always_large": {"share_large": 1.0, "accuracy": acc_large, "energy_wh": e_all_large},
        "curves": {"router": router, "two_stage": two_rows, "length_rule": length},
        "at_large_share": {str(k): at_share(two_rows, k) for k in (0.2, 0.3, 0.4, 0.5)},
        "energy_models": {"small": SMALL, "large": LARGE, "output_tokens": OUTPUT_TOKENS},
    }


def evaluate_artefact(data: Data, x: Any, artefact: Artefact, quality: float = 0.95) -> dict[str, Any]:
    """The curve of a trained artefact on a file (no refitting), and the point at the quality floor."""
    import numpy as np

    score = predict(x, np.asarray(artefact.weights), artefact.bias, np.asarray(artefact.mean), np.asarray(artefact.std))
    e_small, e_large = energy_per_request(data.prompts)
    target = quality * float(data.strong.mean())
    rows = curve(score, data.weak, data.strong, e_small, e_large)
    best = at_quality(rows, target)
    e_all_large = float(e_large.sum())
    at_t = score >= artefact.threshold
    return {
        "n": len(data.prompts),
        "quality": quality,
        "target_accuracy": target,
        "accuracy": {"small": float(data.weak.mean()), "large": float(data.strong.mean())},
        "router": {
            **best,
            "energy_saved_wh": e_all_large - best["energy_wh"],
            "energy_saved_share": 1 - best["energy_wh"] / e_all_large,
        },
        "at_artefact_threshold": {
            "share_large": float((~at_t).mean()),
            "accuracy": float(np.where(at_t, data.weak, data.strong).mean()),
        },
    }


def train(
    data: Data,
    x: Any,
    quality: float = 0.95,
    metrics: dict[str, Any] | None = None,
    l2: float = 30.0,
    max_large_share: float | None = None,
) -> Artefact:
    """Fit on all rows; the threshold is the one that met the quality floor in cross-validation.

    Also fits the cheap-feature first stage and its confidence band (CHEAP_BAND quantiles).
    """
    import numpy as np

    y = (data.weak | ~data.strong).astype(float)
    w, b, m, s = fit_logistic(x, y, l2)
    n_cheap = len(cheap_features("x"))
    cw, cb, cm, cs = fit_logistic(x[:, -n_cheap:], y, 1.0)
    p1 = predict(x[:, -n_cheap:], cw, cb, cm, cs)
    lo, hi = float(np.quantile(p1, CHEAP_BAND[0])), float(np.quantile(p1, CHEAP_BAND[1]))
    two = (metrics or {}).get("two_stage") or (metrics or {}).get("router", {})
    if max_large_share is not None:  # calibrate to a share of large-model calls instead of a quality floor
        two = at_share((metrics or {}).get("curves", {}).get("two_stage", []) or [two], max_large_share)
    threshold = float(min(max(two.get("threshold", 0.5), 0.0), 1.0))
    summary = {k: v for k, v in (metrics or {}).items() if k != "curves"}
    return Artefact(
        ARTEFACT_VERSION,
        [float(v) for v in w],
        b,
        [float(v) for v in m],
        [float(v) for v in s],
        threshold,
        quality,
        f"sha256:{data.digest} ({len(data.prompts)} rows)",
        summary,
        [float(v) for v in cw],
        cb,
        [float(v) for v in cm],
        [float(v) for v in cs],
        lo,
        hi,
    )
