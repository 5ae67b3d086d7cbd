"""Train and evaluate the router on a CSV of prompts with per-model correctness.

Columns: prompt, weak_correct, strong_correct (True/False); optional: dataset, category, split,
difficulty (the everyday-chat set, fit/router/everyday_chat.csv).
Label: the small (weak) model is good enough when it is right or the large one is wrong too.

Extra rows (everyday chat) can join every training fold with a weight, without being scored in the
cross-validation of the main file, so the main file's held-out result stays comparable.
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
    columns: dict[str, list[str]] | None = None  # other columns of the file, by name

    def where(self, column: str, value: str) -> Data:
        """The rows whose `column` equals `value` (for the everyday set's split or difficulty)."""
        cols = self.columns or {}
        if column not in cols:
            raise InputError(f"the data has no column {column!r}")
        keep = [i for i, v in enumerate(cols[column]) if v == value]
        return Data(
            [self.prompts[i] for i in keep],
            self.weak[keep],
            self.strong[keep],
            f"{self.digest}:{column}={value}",
            {k: [v[i] for i in keep] for k, v in cols.items()},
        )


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
    other = [k for k in rows[0] if k not in ("prompt", "weak_correct", "strong_correct")]
    columns = {k: [r[k] or "" for r in rows] for k in other}
    return Data([r["prompt"] for r in rows], weak, strong, hashlib.sha256(text.encode()).hexdigest()[:16], columns)


def features(prompts: Sequence[str], progress: Callable[[str], None] | None = None) -> Any:
    if progress:
        progress(f"embedding {len(prompts)} prompts with all-MiniLM-L6-v2 on CPU")
    return design(embed([p[-4000:] for p in prompts]), [cheap_features(p) for p in prompts])


def fit_logistic(x: Any, y: Any, l2: float = 1.0, iters: int = 25, weight: Any = None) -> tuple[Any, float, Any, Any]:
    """L2-regularised logistic regression by Newton's method on standardised features.

    `weight` (one per row, default 1) counts a row as that many copies of itself.
    """
    import numpy as np

    sw = np.ones(len(x)) if weight is None else np.asarray(weight, dtype=np.float64)
    mean = np.average(x, axis=0, weights=sw)
    std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=sw)) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (sw * (p - y)) + reg * w
        h = (a * (sw * p * (1 - p))[:, None]).T @ a + np.diag(reg)
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


def _stack(x: Any, y: Any, x_extra: Any, y_extra: Any, extra_weight: float) -> tuple[Any, Any, Any]:
    import numpy as np

    if x_extra is None or len(x_extra) == 0:
        return x, y, None
    w = np.concatenate([np.ones(len(x)), np.full(len(x_extra), extra_weight)])
    return np.vstack([x, x_extra]), np.concatenate([y, y_extra]), w


CHAT_L2 = 10.0  # L2 strength of the everyday-chat head (162 training rows: stronger than the main head's)
Head = tuple[Any, float, Any, Any]  # weights, bias, mean, std of one logistic head


def fit_heads(x: Any, y: Any, x_e: Any, y_e: Any, l2: float, extra_weight: float) -> dict[str, Head]:
    """The router's logistic heads on one training set.

    main: P(small good enough) on the main data (GSM8K/MMLU) alone, so its result stays comparable;
    cheap: the first stage on the cheap features, main and everyday rows (weighted);
    gate: P(a trivially easy everyday request), everyday rows whose label is "small good enough"
    against the main rows and the hard everyday rows; chat: P(small good enough) on everyday rows.
    The embedded probability mixes them: gate * chat + (1 - gate) * main (see score_heads).
    """
    import numpy as np

    n_cheap = len(cheap_features("x"))
    heads = {"main": fit_logistic(x, y, l2)}
    xa, ya, wa = _stack(x, y, x_e, y_e, extra_weight)
    heads["cheap"] = fit_logistic(xa[:, -n_cheap:], ya, 1.0, weight=wa)
    if x_e is not None and len(x_e) and extra_weight > 0:
        xg, yg, wg = _stack(x, np.zeros(len(x)), x_e, y_e, extra_weight)
        heads["gate"] = fit_logistic(xg, yg, l2, weight=wg)
        heads["chat"] = fit_logistic(x_e, y_e, CHAT_L2)
    return heads


def score_heads(heads: dict[str, Head], x: Any) -> tuple[Any, Any]:
    """(embedded P(small good enough), the cheap first stage's P) for each row of x."""
    p = predict(x, *heads["main"])
    if "gate" in heads:
        g = predict(x, *heads["gate"])
        p = g * predict(x, *heads["chat"]) + (1.0 - g) * p
    return p, predict(x[:, -len(cheap_features("x")) :], *heads["cheap"])


def labels(data: Data) -> Any:
    """1 where the small model is good enough: it is right, or the large one is wrong too."""
    return (data.weak | ~data.strong).astype(float)


def evaluate(
    data: Data,
    x: Any,
    quality: float = 0.95,
    folds: int = 5,
    seed: int = 7,
    l2: float = 30.0,
    extra: Data | None = None,
    x_extra: Any = None,
    extra_weight: float = 1.0,
) -> dict[str, Any]:
    """K-fold cross-validated curves for the router and the baselines, and the point at the quality floor.

    Only `data` is scored. `extra` rows (everyday chat) are split into the same number of folds:
    the other folds' extra rows join each training fold with `extra_weight`, and the held-out
    extra rows get routed at the calibrated thresholds (`extra_cv`), so a weight can be chosen
    on training data alone.
    """
    import numpy as np

    n = len(data.prompts)
    y = labels(data)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % folds
    has_extra = extra is not None and x_extra is not None and len(extra.prompts) > 0
    ne = len(extra.prompts) if has_extra and extra is not None else 0
    y_e = labels(extra) if has_extra and extra is not None else np.zeros(0)
    fold_e = np.random.default_rng(seed + 1).permutation(ne) % folds
    x_e = x_extra if has_extra else np.zeros((0, x.shape[1]))
    score, p1 = np.zeros(n), np.zeros(n)
    score_e, p1_e = np.zeros(ne), np.zeros(ne)
    for k in range(folds):
        tr, te = fold != k, fold == k
        tr_e, te_e = fold_e != k, fold_e == k
        heads = fit_heads(x[tr], y[tr], x_e[tr_e] if has_extra else None, y_e[tr_e], l2, extra_weight)
        score[te], p1[te] = score_heads(heads, x[te])
        if has_extra:
            score_e[te_e], p1_e[te_e] = score_heads(heads, x_e[te_e])
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
    best_two = at_quality(two_rows, target)
    e_all_large = float(e_large.sum())
    out: dict[str, Any] = {
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
            **best_two,
            "decided_early": float((early_small | early_large).mean()),
            "cheap_lo": lo,
            "cheap_hi": hi,
            "energy_saved_share": 1 - best_two["energy_wh"] / e_all_large,
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
    if has_extra:
        easy = y_e > 0.5
        two_small = (p1_e >= hi) | ((p1_e > lo) & (score_e >= best_two["threshold"]))
        full_small = score_e >= best["threshold"]
        out["extra_cv"] = {
            "n": ne,
            "weight": extra_weight,
            "two_stage": {
                "easy_share_large": float((~two_small[easy]).mean()) if easy.any() else 0.0,
                "hard_share_large": float((~two_small[~easy]).mean()) if (~easy).any() else 0.0,
            },
            "router": {
                "easy_share_large": float((~full_small[easy]).mean()) if easy.any() else 0.0,
                "hard_share_large": float((~full_small[~easy]).mean()) if (~easy).any() else 0.0,
            },
        }
    return out


def artefact_scores(artefact: Artefact, x: Any) -> Any:
    """P(small good enough) of a trained artefact for each row of x: Router.p_small_ok, vectorised."""
    import numpy as np

    score = predict(x, np.asarray(artefact.weights), artefact.bias, np.asarray(artefact.mean), np.asarray(artefact.std))
    if artefact.gate is not None and artefact.chat is not None:  # the everyday-chat heads
        g = predict(x, *_head_arrays(artefact.gate))
        score = g * predict(x, *_head_arrays(artefact.chat)) + (1.0 - g) * score
    return score


def evaluate_artefact(data: Data, x: Any, artefact: Artefact, quality: float = 0.95) -> dict[str, Any]:
    """The curve of a trained artefact on a file (no refitting), and the point at the quality floor."""
    import numpy as np

    score = artefact_scores(artefact, x)
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
    extra: Data | None = None,
    x_extra: Any = None,
    extra_weight: float = 1.0,
) -> Artefact:
    """Fit on all rows; the threshold is the one that met the quality floor in cross-validation.

    Also fits the cheap-feature first stage and its confidence band (CHEAP_BAND quantiles).
    """
    import numpy as np

    y = labels(data)
    y_e = labels(extra) if extra is not None and x_extra is not None else None
    heads = fit_heads(x, y, x_extra, y_e, l2, extra_weight)
    w, b, m, s = heads["main"]
    cw, cb, cm, cs = heads["cheap"]
    _, p1 = score_heads(heads, x)  # the band is set on the main data, as in evaluate()
    lo, hi = float(np.quantile(p1, CHEAP_BAND[0])), float(np.quantile(p1, CHEAP_BAND[1]))
    two = (metrics or {}).get("two_stage") or (metrics or {}).get("router", {})
    if max_large_share is not None:  # calibrate to a share of large-model calls instead of a quality floor
        two = at_share((metrics or {}).get("curves", {}).get("two_stage", []) or [two], max_large_share)
    threshold = float(min(max(two.get("threshold", 0.5), 0.0), 1.0))
    summary = {k: v for k, v in (metrics or {}).items() if k != "curves"}
    trained_on = f"sha256:{data.digest} ({len(data.prompts)} rows)"
    if extra is not None and x_extra is not None:
        trained_on += f" + sha256:{extra.digest} ({len(extra.prompts)} rows, weight {extra_weight:g})"
    return Artefact(
        ARTEFACT_VERSION,
        [float(v) for v in w],
        b,
        [float(v) for v in m],
        [float(v) for v in s],
        threshold,
        quality,
        trained_on,
        summary,
        [float(v) for v in cw],
        cb,
        [float(v) for v in cm],
        [float(v) for v in cs],
        lo,
        hi,
        _head_json(heads.get("gate")),
        _head_json(heads.get("chat")),
    )


def _head_arrays(d: dict[str, Any]) -> Head:
    import numpy as np

    return np.asarray(d["weights"]), float(d["bias"]), np.asarray(d["mean"]), np.asarray(d["std"])


def _head_json(head: Head | None) -> dict[str, Any] | None:
    if head is None:
        return None
    w, b, m, s = head
    return {"weights": [float(v) for v in w], "bias": float(b), "mean": [float(v) for v in m], "std": [float(v) for v in s]}


def evaluate_requests(router: Any, data: Data, group: str = "category") -> dict[str, Any]:
    """Route each prompt of a labelled set exactly as the gateway does in balanced mode.

    Returns the share sent to the large model for the easy rows (label: small is good enough) and
    the hard ones, and per value of `group` (a column of the file).
    """
    decisions = [router.decision([{"role": "user", "content": p}]) for p in data.prompts]
    easy = [bool(v) for v in labels(data) > 0.5]
    groups = (data.columns or {}).get(group, ["all"] * len(data.prompts))

    def share(idx: list[int]) -> dict[str, Any]:
        large = sum(not decisions[i].small for i in idx)
        return {"n": len(idx), "to_large": large, "share_large": large / len(idx) if idx else 0.0}

    out: dict[str, Any] = {
        "threshold": router.default_threshold,
        "easy": share([i for i, e in enumerate(easy) if e]),
        "hard": share([i for i, e in enumerate(easy) if not e]),
        "decided_early": sum(d.stage == "cheap" for d in decisions) / max(len(decisions), 1),
        "by": {g: share([i for i, v in enumerate(groups) if v == g]) for g in dict.fromkeys(groups)},
        "p_small_ok": {p: round(d.p_small_ok, 3) for p, d in zip(data.prompts, decisions, strict=True)},
    }
    return out
