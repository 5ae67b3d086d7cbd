"""Energy-aware routing: send a request to the small model when it will answer as well as the large one.

The decision is a logistic head over all-MiniLM-L6-v2 sentence embeddings of the conversation
plus cheap features (length, code and maths markers, turns). It predicts P(small is as good as
large); the request goes to the small model when that probability clears a threshold chosen
for a quality floor. `wattlens route train` fits an artefact; `wattlens route eval` evaluates.
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
    """The whole conversation as one text (every turn counts), and its number of user turns."""
    if isinstance(messages, str):
        return messages, 1
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


@functools.lru_cache(maxsize=1)
def embedder() -> Any:
    from sentence_transformers import SentenceTransformer

    from wattlens.gateway.local import embedding_model_path

    return SentenceTransformer(embedding_model_path(), device="cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> Any:
    return embedder().encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)


def design(emb: Any, feats: Any) -> Any:
    import numpy as np

    return np.hstack([emb, np.asarray(feats, dtype=np.float64)])


class Router:
    """Loaded once at gateway start; decide() costs one embedding and a dot product."""

    def __init__(self, artefact: Artefact, two_stage: bool = True) -> None:
        """two_stage=False embeds every request (better routing, ~20 ms a decision on 2 CPU cores)."""
        import numpy as np

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

    def p_small_ok(self, messages: Sequence[dict[str, Any]] | str) -> float:
        text, turns = conversation_text(messages)
        x = design(embed([text[-4000:]]), [cheap_features(text, turns)])[0]
        z = float(((x - self._mean) / self._std) @ self._w + self.a.bias)
        return 1.0 / (1.0 + math.exp(-z))

    def p_cheap(self, messages: Sequence[dict[str, Any]] | str) -> float | None:
        """The first stage's probability from the cheap features alone (None without a first stage)."""
        if self._cheap is None or not self.two_stage:
            return None
        w, mean, std = self._cheap
        text, turns = conversation_text(messages)
        z = float(((cheap_features(text, turns) - mean) / std) @ w + self.a.cheap_bias)
        return 1.0 / (1.0 + math.exp(-z))

    def decide(self, messages: Sequence[dict[str, Any]] | str, threshold: float | None = None) -> tuple[bool, float]:
        """(use the small model?, its probability of being as good as the large one).

        A confident first stage decides alone in microseconds; the rest pay for the embedding.
        """
        default = self.a.threshold if self.two_stage else self.full_threshold
        t = default if threshold is None else threshold
        if not 0.0 <= t <= 1.0:
            raise InputError(f"router threshold must be in [0, 1], got {t}")
        p1 = self.p_cheap(messages)
        if p1 is not None and threshold is None and (p1 >= self.a.cheap_hi or p1 <= self.a.cheap_lo):
            return p1 >= self.a.cheap_hi, p1
        p = self.p_small_ok(messages)
        return p >= t, p


__all__ = ["FEATURES", "Artefact", "Router", "cheap_features", "conversation_text", "design", "embed"]
