"""Energy-aware routing: send a request to the small model when it will answer as well as the large one.

The decision is a logistic head over all-MiniLM-L6-v2 sentence embeddings of the conversation
plus cheap features (length, code and maths markers, turns). It predicts P(small is as good as
large); the request goes to the small model when that probability clears a threshold chosen
for a quality floor. `wattlens route train` fits an artefact; `wattlens route eval` evaluates.

The threshold has three inputs: the calibrated quality floor, the caller's preference (quality,
balanced, energy) and the pressure of an energy or carbon budget (`threshold_for`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wattlens.errors import ConfigError, InputError

ARTEFACT_VERSION = 1
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|#include|\bfunction\b", re.M)
_MATH = re.compile(r"\d+\s*[-+*/^=]\s*\d+|\$[^$]+\$|\\frac|\bsolve\b|\bequation\b|\bcalculate\b", re.I)
FEATURES = ("log_chars", "log_words", "digits_share", "has_code", "has_math", "question_marks", "turns", "choices")


def conversation_text(messages: Sequence[dict[str, Any]] | str) -> tuple[str, int]:
    """The whole conversation as one text (every turn counts), and its number of user turns.

    A single user message is its own text, exactly as the prompts the router was trained on.
    """
    if isinstance(messages, str):
        return messages, 1
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        content = messages[0].get("content")
        if isinstance(content, str):
            return content, 1
    parts, turns = [], 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if m.get("role") == "user":
            turns += 1
        parts.append(f"{m.get('role', 'user')}: {content or ''}")
    return "\n".join(parts), max(turns, 1)


def cheap_features(text: str, turns: int = 1) -> list[float]:
    words = len(text.split())
    digits = sum(c.isdigit() for c in text)
    return [
        math.log1p(len(text)),
        math.log1p(words),
        digits / max(len(text), 1),
        1.0 if _CODE.search(text) else 0.0,
        1.0 if _MATH.search(text) else 0.0,
        float(text.count("?")),
        float(turns),
        1.0 if re.search(r"(^|\n)\s*\(?[A-D][).]\s", text) else 0.0,  # multiple-choice options
    ]


PREFERENCES = ("quality", "balanced", "energy")
BUDGET_PRESSURE_START = 0.5  # share of a budget used before the router starts to favour the small model


def threshold_for(
    base: float,
    preference: str = "balanced",
    budget_used_share: float | None = None,
    pressure_start: float = BUDGET_PRESSURE_START,
) -> float:
    """The threshold on P(small is as good) for one request, from its three targets.

    1. quality: `base`, the threshold calibrated for the quality floor;
    2. preference: `quality` moves it halfway to 1, `energy` halfway to 0, `balanced` keeps it;
    3. budget: `budget_used_share` (energy or carbon used so far in the period / the budget, 0..1;
       None when the team has no budget) leaves the threshold alone up to `pressure_start` and
       then lowers it linearly to 0 at 100 % of the budget (every request to the small model);
       beyond the budget it stays 0.
    """
    if not 0.0 <= base <= 1.0:
        raise InputError(f"router threshold must be in [0, 1], got {base}")
    scaled = {"quality": (base + 1.0) / 2.0, "balanced": base, "energy": base / 2.0}
    if preference not in scaled:
        raise InputError(f"routing preference must be one of {', '.join(PREFERENCES)}, got {preference!r}")
    t = scaled[preference]
    if budget_used_share is None:
        return t
    if not math.isfinite(budget_used_share) or budget_used_share < 0.0:
        raise InputError(f"budget_used_share must be a finite number >= 0, got {budget_used_share}")
    if not 0.0 <= pressure_start < 1.0:
        raise InputError(f"pressure_start must be in [0, 1), got {pressure_start}")
    pressure = min(max((budget_used_share - pressure_start) / (1.0 - pressure_start), 0.0), 1.0)
    return t * (1.0 - pressure)


@dataclass(frozen=True)
class Decision:
    """One routing decision: which model, how sure, against which threshold, and how it was decided."""

    small: bool
    p_small_ok: float
    threshold: float
    stage: str  # "cheap": the first stage decided alone; "embedded": the embedding head decided


@dataclass(frozen=True)
class Artefact:
    version: int
    weights: list[float]
    bias: float
    mean: list[float]
    std: list[float]
    threshold: float
    quality: float
    trained_on: str
    metrics: dict[str, Any]
    # Optional first stage on the cheap features alone: confident requests skip the embedding.
    cheap_weights: list[float] | None = None
    cheap_bias: float = 0.0
    cheap_mean: list[float] | None = None
    cheap_std: list[float] | None = None
    cheap_lo: float = -1.0  # p <= lo: large model without embedding
    cheap_hi: float = 2.0  # p >= hi: small model without embedding
    # Optional everyday-chat heads, each {"weights", "bias", "mean", "std"}: the embedded probability
    # is gate * chat + (1 - gate) * main, where gate is P(a trivially easy everyday request).
    gate: dict[str, Any] | None = None
    chat: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> Artefact:
        try:
            text = (
                Path(path).read_text() if path else resources.files("wattlens.route").joinpath("router-v1.json").read_text()
            )
            d = json.loads(text)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read router artefact {path or 'router-v1.json'}: {e}") from e
        if d.get("version") != ARTEFACT_VERSION:
            raise ConfigError(f"router artefact version {d.get('version')} is not {ARTEFACT_VERSION}; retrain it")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=1) + "\n")


EMBEDDERS = ("int8", "fp32")  # how the router's embedding stage runs all-MiniLM-L6-v2 (see embedder)
ROUTER_EMBEDDER = "int8"  # the router's default: ~35 % less time than fp32, same decisions (docs/router.md)
EMBED_THREADS: int | None = None  # torch intra-op threads the router sets when it first embeds (None: torch's own)


@functools.lru_cache(maxsize=2)
def embedder(kind: str = "fp32") -> Any:
    """all-MiniLM-L6-v2 from the installed package on CPU, loaded once per kind.

    "fp32" is the model as trained (the heads were fitted on its embeddings; `train` uses it).
    "int8" replaces its Linear layers by torch's dynamic int8 ones (weights int8 with a scale per
    output channel, activations quantised per call): same tokenizer, truncation (256 tokens) and
    pooling. A single scale per weight matrix moved the embeddings too far (cosine 0.94 median).
    """
    if kind not in EMBEDDERS:
        raise InputError(f"router embedder must be one of {', '.join(EMBEDDERS)}, got {kind!r}")
    from sentence_transformers import SentenceTransformer

    from wattlens.gateway.local import embedding_model_path

    model = SentenceTransformer(embedding_model_path(), device="cpu")
    if kind == "int8":
        import warnings

        import torch

        with warnings.catch_warnings():  # torch.ao's notice that eager quantisation moves to torchao
            warnings.simplefilter("ignore")
            # in place: the Linear layers inside the loaded model are swapped for int8 ones
            spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}  # a scale per output row
            torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model[0].auto_model, spec, dtype=torch.qint8, inplace=True
            )
    return model


def embed(texts: Sequence[str], batch_size: int = 64, kind: str = "fp32") -> Any:
    return embedder(kind).encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)


def design(emb: Any, feats: Any) -> Any:
    import numpy as np

    return np.hstack([emb, np.asarray(feats, dtype=np.float64)])


def _logistic(x: Any, w: Any, b: float, mean: Any, std: Any) -> float:
    z = float(((x - mean) / std) @ w + b)
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def _head(d: dict[str, Any] | None) -> tuple[Any, float, Any, Any] | None:
    import numpy as np

    if d is None:
        return None
    try:
        return np.asarray(d["weights"]), float(d["bias"]), np.asarray(d["mean"]), np.asarray(d["std"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"router artefact has a malformed head: {e}") from e


class Router:
    """Loaded once at gateway start; decide() costs at most one embedding and a few dot products."""

    def __init__(
        self,
        artefact: Artefact,
        two_stage: bool = True,
        embedder: str = ROUTER_EMBEDDER,
        threads: int | None = EMBED_THREADS,
    ) -> None:
        """two_stage=False embeds every request (better routing; every decision pays the embedding).

        `embedder`: "int8" (default) or "fp32", the model the heads were fitted on (see `embedder`).
        `threads`: torch's intra-op threads, set process-wide when this router first embeds; None
        (default) leaves torch's setting alone (one per core: on 2 cores, 2 threads cut the p99 by a
        third against 1, quiet or loaded; bench/results/route.md).
        """
        import numpy as np

        if embedder not in EMBEDDERS:
            raise InputError(f"router embedder must be one of {', '.join(EMBEDDERS)}, got {embedder!r}")
        if threads is not None and threads < 1:
            raise InputError(f"router threads must be >= 1 or None, got {threads}")
        self.embedder = embedder
        self.threads = threads
        self._threads_set = False
        self.a = artefact
        self.two_stage = two_stage and artefact.cheap_weights is not None
        self.full_threshold = float(artefact.metrics.get("router", {}).get("threshold", artefact.threshold))
        self._w = np.asarray(artefact.weights)
        self._mean = np.asarray(artefact.mean)
        self._std = np.asarray(artefact.std)
        a = artefact
        self._cheap = (
            (np.asarray(a.cheap_weights), np.asarray(a.cheap_mean), np.asarray(a.cheap_std))
            if a.cheap_weights is not None and a.cheap_mean is not None and a.cheap_std is not None
            else None
        )
        self._gate = _head(a.gate)
        self._chat = _head(a.chat)

    def p_small_ok(self, messages: Sequence[dict[str, Any]] | str) -> float:
        text, turns = conversation_text(messages)
        x = design(self._embed([text[-4000:]]), [cheap_features(text, turns)])[0]
        p = _logistic(x, self._w, self.a.bias, self._mean, self._std)
        if self._gate is not None and self._chat is not None:
            g = _logistic(x, *self._gate)
            p = g * _logistic(x, *self._chat) + (1.0 - g) * p
        return p

    def p_cheap(self, messages: Sequence[dict[str, Any]] | str) -> float | None:
        """The first stage's probability from the cheap features alone (None without a first stage)."""
        if self._cheap is None or not self.two_stage:
            return None
        w, mean, std = self._cheap
        text, turns = conversation_text(messages)
        z = float(((cheap_features(text, turns) - mean) / std) @ w + self.a.cheap_bias)
        return 1.0 / (1.0 + math.exp(-z))

    def warm(self) -> None:
        """Load the embedder and embed once, so that no request pays for it.

        Without this the first request that reaches the embedding stage loads all-MiniLM-L6-v2
        (about 6 s on 2 CPU cores); a confident first stage never loads it.
        """
        self._embed(["warm up"])

    def _embed(self, texts: Sequence[str]) -> Any:
        if self.threads is not None and not self._threads_set:
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
            self._threads_set = True
        return embed(texts, kind=self.embedder)

    @property
    def default_threshold(self) -> float:
        """The threshold calibrated for the quality floor (balanced mode, no budget pressure)."""
        return self.a.threshold if self.two_stage else self.full_threshold

    def decision(self, messages: Sequence[dict[str, Any]] | str, threshold: float | None = None) -> Decision:
        """Decide small or large against a threshold (default: the calibrated one).

        A confident first stage decides alone in microseconds when the threshold can only confirm
        it: "small" at the calibrated threshold or below, "large" at it or above. The rest (and
        every request once a preference or budget moves the threshold the other way) pay for
        the embedding.
        """
        default = self.default_threshold
        t = default if threshold is None else threshold
        if not 0.0 <= t <= 1.0:
            raise InputError(f"router threshold must be in [0, 1], got {t}")
        p1 = self.p_cheap(messages)
        if p1 is not None:
            if p1 >= self.a.cheap_hi and t <= default:
                return Decision(True, p1, t, "cheap")
            if p1 <= self.a.cheap_lo and t >= default:
                return Decision(False, p1, t, "cheap")
        p = self.p_small_ok(messages)
        return Decision(p >= t, p, t, "embedded")

    def decide(self, messages: Sequence[dict[str, Any]] | str, threshold: float | None = None) -> tuple[bool, float]:
        """(use the small model?, its probability of being as good as the large one)."""
        d = self.decision(messages, threshold)
        return d.small, d.p_small_ok

    def choose(
        self,
        messages: Sequence[dict[str, Any]] | str,
        preference: str = "balanced",
        budget_used_share: float | None = None,
        threshold: float | None = None,
    ) -> Decision:
        """The decision for a request with a preference and a team's budget use (see threshold_for).

        `threshold` replaces the calibrated base (a route's configured threshold).
        """
        base = self.default_threshold if threshold is None else threshold
        return self.decision(messages, threshold_for(base, preference, budget_used_share))


__all__ = [
    "BUDGET_PRESSURE_START",
    "EMBEDDERS",
    "EMBED_THREADS",
    "FEATURES",
    "PREFERENCES",
    "ROUTER_EMBEDDER",
    "Artefact",
    "Decision",
    "Router",
    "cheap_features",
    "conversation_text",
    "design",
    "embed",
    "embedder",
    "threshold_for",
]
