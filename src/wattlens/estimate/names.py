"""Which model a name means: a catalogue row, or size and precision read from the name itself.

People send the names their serving stack uses: Hugging Face ids (`meta-llama/Llama-3.1-8B-Instruct`),
Ollama tags (`llama3.1:8b`, `qwen2.5:7b-instruct-q4_K_M`, `mistral`), GGUF file names
(`SmolLM2-135M-Instruct.Q4_1.gguf`), dated vendor snapshots (`gpt-4o-2024-08-06`) and `-latest`
aliases. `resolve` maps each to what the estimator needs, in this order:

1. the catalogue (factors `models` table), by any of a row's names;
2. the known names in `model_names.csv` (Ollama's bare family names and their default tags,
   embedding models), each with its source;
3. the catalogue again, by a normalised form of the name (case, separators, `Meta-` prefix,
   quantisation, `.gguf`, date and `-latest` suffixes, `-instruct` variants);
4. the size and precision written in the name (`8b`, `135m`, `8x7b`, `30b-a3b`, `q4_K_M`, `awq`...);
5. nothing known: a generic model whose parameter range spans the catalogue (10th, 50th and 90th
   percentiles of active and of total parameters), so the receipt says how little is known.

Pure: a name and a factor set in, a `Resolution` out; results are cached per factor set.
"""

from __future__ import annotations

import bisect
import csv
import functools
import io
import re
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Literal

from wattlens.units import Interval

if TYPE_CHECKING:
    from wattlens.factors import FactorSet, Repository
    from wattlens.factors.records import ModelSpec

Kind = Literal["chat", "embedding"]
# catalogue: a row by one of its names; known: model_names.csv; matched: a row by the normalised name;
# name: size read from the name; generic: nothing known. (What an upstream says is gateway/modelinfo.py's.)
How = Literal["catalogue", "known", "matched", "name", "generic"]
MAX_NAME_CHARS = 200  # longer "names" are not parsed (a client can send anything)

# GGUF quantisation types (llama.cpp ggml-quants; Ollama tags) and the estimator precision whose
# bytes per weight are nearest: 2-5 bit types -> int4 (0.53 B), 6-8 bit -> int8 (1 B).
_GGUF = re.compile(r"(?:^|[-_.:/ ])(i?q[1-8](?:_[0-9a-z]+)*)(?=$|[-.:/ ])")
_GGUF_BITS = re.compile(r"i?q([1-8])")
# Other precision words in names (Hugging Face repos of AWQ, GPTQ, FP8, bitsandbytes, MLX weights).
_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?:^|[-_.:/ ]){p}(?=$|[-_.:/ ])"), prec)
    for p, prec in (
        (r"mxfp4", "mxfp4"),
        (r"nvfp4", "fp4"),
        (r"fp4", "fp4"),
        (r"fp8(?:[-_]dynamic)?", "fp8"),
        (r"w8a8(?:[-_]fp8)?", "int8"),
        (r"gptq[-_]int8", "int8"),
        (r"int8", "int8"),
        (r"8[-_]?bit", "int8"),
        (r"w4a16", "int4"),
        (r"awq", "int4"),
        (r"gptq(?:[-_]int4)?", "int4"),
        (r"int4", "int4"),
        (r"(?:bnb[-_])?4[-_]?bit", "int4"),
        (r"bf16", "bf16"),
        (r"f(?:p)?16", "fp16"),
        (r"f(?:p)?32", "bf16"),  # no 4-byte precision in the estimator: the nearest it has
    )
)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([bm])$")
_MOE = re.compile(r"^(\d+)x(\d+(?:\.\d+)?)([bm])$")
_ACTIVE = re.compile(r"^a(\d+(?:\.\d+)?)([bm])$")
_EFFECTIVE = re.compile(r"^e(\d+(?:\.\d+)?)b$")  # Gemma 3n: effective parameters
_DATE = re.compile(r"[-_@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{4}|\d{4})$")
_EMBEDDING = re.compile(r"embed|minilm|mpnet|sentence-transformers|(?:^|[-/_])(?:bge|e5|gte)(?:[-_]|$)")
_SUFFIX = re.compile(r"v\d+(?:\.\d+)*|a\d+(?:\.\d+)?b|\d{4}|\d\d")  # a version, an MoE's active size, a date
_VARIANT_TOKENS = frozenset(("instruct", "it", "chat", "hf", "text", "base"))
# Mixtral-style "NxMb" names: total ~0.82 x N x M (shared attention), active ~1.8 x M with top-2 routing:
# Mixtral 8x7B is 46.7B total / 12.9B active, 8x22B 141B / 39B (mistral.ai/news/mixtral-of-experts, 2023).
MOE_TOTAL_SHARE, MOE_ACTIVE_EXPERTS = 0.82, 1.8


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a model name means to the estimator, and how that was found."""

    name: str
    how: How
    kind: Kind
    spec: ModelSpec | None  # the catalogue row, when one matched
    active_params_b: Interval  # the row's, or what the name, a known-names row or the generic range says
    total_params_b: Interval
    precision: str | None  # from the name or a known default; None: the row's own
    note: str  # how it was resolved, for people (CLI, docs)

    @property
    def known(self) -> bool:
        return self.how != "generic"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Receipt warning codes that say how the model was resolved."""
        if self.how == "generic":
            return ("model-unknown-generic",)
        if self.how == "name":
            return ("model-params-from-name",)
        if self.how == "known" and self.spec is None and self.active_params_b.low != self.active_params_b.high:
            return ("params-estimated",)
        return ()


@dataclass(frozen=True, slots=True)
class KnownName:
    """A row of model_names.csv."""

    name: str
    aliases: tuple[str, ...]
    kind: Kind
    catalogue_model: str
    params_b: Interval | None
    precision: str
    params_basis: str
    source: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@functools.lru_cache(maxsize=1)
def known_names() -> dict[str, KnownName]:
    """model_names.csv by lower-case name and alias (read on first use)."""
    text = resources.files("wattlens.estimate").joinpath("model_names.csv").read_text(encoding="utf-8")
    out: dict[str, KnownName] = {}
    for r in csv.DictReader(io.StringIO(text)):
        params = None
        if r["params_b_mid"]:
            params = Interval(float(r["params_b_low"]), float(r["params_b_mid"]), float(r["params_b_high"]))
        kind: Kind = "embedding" if r["kind"] == "embedding" else "chat"
        k = KnownName(
            r["name"],
            tuple(a.strip() for a in r["aliases"].split(";") if a.strip()),
            kind,
            r["catalogue_model"],
            params,
            r["precision"],
            r["params_basis"],
            r["source"],
        )
        for n in k.names:
            out.setdefault(n.lower(), k)
    return out


def precision_of(name: str) -> str | None:
    """The weight precision a model name states (`q4_K_M`, `Q8_0`, `fp8`, `AWQ`, `-4bit`...), else None."""
    s = name.lower()
    m = _GGUF.search(s)
    if m:
        bits_m = _GGUF_BITS.match(m.group(1))
        bits = int(bits_m.group(1)) if bits_m else 4
        return "int8" if bits >= 6 else "int4"
    for pattern, prec in _WORDS:
        if pattern.search(s):
            return prec
    return None


def _strip_quant(s: str) -> str:
    s = _GGUF.sub("", s)
    for pattern, _ in _WORDS:
        s = pattern.sub("", s)
    return s


def canonical(name: str) -> str:
    """A name's normalised form: last path segment, lower case, no quantisation, `.gguf`, `Meta-` or
    shard suffix, dashes between a word and its version (`llama3.1` == `Llama-3.1`)."""
    s = name.strip().lower().rsplit("/", 1)[-1]
    s = re.sub(r"\.gguf$", "", s)
    s = re.sub(r"-\d{5}-of-\d{5}$", "", s)
    s = s.replace(":", "-")
    s = _strip_quant(s)
    s = re.sub(r"[-_](gguf|ggml|mlx|onnx|hf)(?=$|[-_])", "", s)
    s = re.sub(r"(?<=[a-z]{2})(?=\d)", "-", s)  # llama3.1 -> llama-3.1; keeps a3b, e5, v0.3, r1
    tokens = [t for t in re.split(r"[-_ ]+", s) if t]
    if len(tokens) > 1 and tokens[0] == "meta" and tokens[1] == "llama":
        tokens = tokens[1:]
    return "-".join(tokens)


def _without_variants(key: str) -> str:
    return "-".join(t for t in key.split("-") if t not in _VARIANT_TOKENS)


@dataclass(frozen=True)
class _Index:
    exact: dict[str, ModelSpec]  # canonical name -> row
    base: dict[str, ModelSpec]  # canonical name without instruct/chat/it/hf -> row
    keys: tuple[str, ...]  # sorted canonical names, for prefix matches
    generic_active: Interval
    generic_total: Interval


@functools.lru_cache(maxsize=8)
def _index(models: Repository[ModelSpec]) -> _Index:
    exact: dict[str, ModelSpec] = {}
    base: dict[str, tuple[ModelSpec, bool]] = {}
    rows = models.list()
    for r in rows:
        for n in r.names:
            key = canonical(n)
            exact.setdefault(key, r)
            b = _without_variants(key)
            chat = b != key  # prefer the chat/instruct row for a bare name: that is what servers serve
            if b not in base or (chat and not base[b][1]):
                base[b] = (r, chat)
    return _Index(exact, {b: r for b, (r, _) in base.items()}, tuple(sorted(exact)), *_generic_range(rows))


def _generic_range(rows: list[ModelSpec]) -> tuple[Interval, Interval]:
    """10th, 50th and 90th percentiles of the catalogue's active and total parameters."""
    if len(rows) < 2:
        return Interval(1.0, 10.0, 100.0), Interval(1.0, 10.0, 100.0)
    a = statistics.quantiles([r.active_params_b.mid for r in rows], n=10)
    t = statistics.quantiles([r.total_params_b.mid for r in rows], n=10)
    a_mid = statistics.median(r.active_params_b.mid for r in rows)
    t_mid = statistics.median(r.total_params_b.mid for r in rows)
    active = Interval(a[0], a_mid, a[-1])
    return active, Interval(max(t[0], active.low), max(t_mid, active.mid), max(t[-1], active.high))


def _billions(value: str, unit: str) -> float:
    return float(value) / (1000.0 if unit == "m" else 1.0)


def size_of(name: str) -> tuple[float, float] | None:
    """(active, total) billions of parameters written in a name, e.g. `8b`, `135M`, `8x7b`, `30b-a3b`."""
    tokens = canonical(name).split("-")
    total: float | None = None
    active: float | None = None
    m_size: float | None = None
    for t in tokens:
        if (m := _MOE.match(t)) is not None:
            per = _billions(m.group(2), m.group(3))
            return MOE_ACTIVE_EXPERTS * per, MOE_TOTAL_SHARE * int(m.group(1)) * per
        if (m := _ACTIVE.match(t)) is not None:
            active = active or _billions(m.group(1), m.group(2))
        elif (m := _EFFECTIVE.match(t)) is not None:
            total = total or float(m.group(1))
        elif (m := _SIZE.match(t)) is not None:
            v = _billions(m.group(1), m.group(2))
            if m.group(2) == "b":
                total = total or v
            else:
                m_size = m_size or v  # "135m"; a later "1m" (context length) never wins over "7b"
    total = total or m_size
    if total is None or total <= 0:
        return None
    if active is None or active > total:
        active = total
    return active, total


def is_embedding(name: str) -> bool:
    return _EMBEDDING.search(name.lower()) is not None


# Cloud model ids around a vendor's own name: Bedrock's "us.anthropic.NAME-v1:0", "meta.NAME-v1:0".
_BEDROCK = re.compile(
    r"(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|qwen|openai)\.(.+?)(?:-v\d+(?::\d+)?)?",
    re.IGNORECASE,
)


def _candidates(name: str) -> list[str]:
    """The name, then without a vendor wrapper, a date suffix, `-latest`, or an Ollama `:latest` tag."""
    s = name.strip()
    out = [s]
    if s.startswith("ft:") and s.count(":") >= 2:  # an OpenAI fine-tune, ft:BASE:org::id, has its base's size
        out.append(s.split(":")[1])
    elif (m := _BEDROCK.fullmatch(s)) is not None:
        out.append(m.group(1))
    for pattern in (r":latest$", r"-latest$", _DATE.pattern):
        stripped = re.sub(pattern, "", out[-1], flags=re.IGNORECASE)
        if stripped and stripped != out[-1]:
            out.append(stripped)
    return out


def _ollama_tag(name: str) -> bool:
    """An Ollama model name: `family:tag`, or a bare family name (no path, no dots of a file)."""
    last = name.rsplit("/", 1)[-1]
    return ":" in last and not last.startswith("ft:") and _BEDROCK.fullmatch(last) is None


def _ollama_default_precision(name: str) -> str | None:
    """Ollama's library tags without a quantisation are 4-bit GGUF (Q4_K_M, older ones Q4_0), except
    families model_names.csv knows better (gpt-oss ships in MXFP4)."""
    if not _ollama_tag(name):
        return None
    family = known_names().get(name.rsplit("/", 1)[-1].split(":", 1)[0].lower())
    return family.precision if family is not None and family.precision else "int4"


def _from_row(
    name: str, how: How, spec: ModelSpec, precision: str | None, note: str, kind: Kind | None = None
) -> Resolution:
    k: Kind = kind or ("embedding" if is_embedding(spec.model_id) else "chat")
    return Resolution(name, how, k, spec, spec.active_params_b, spec.total_params_b, precision, note)


def _known(name: str, k: KnownName, models: Repository[ModelSpec]) -> Resolution | None:
    prec = precision_of(name) or k.precision or None
    if k.catalogue_model:
        spec = models.find(k.catalogue_model)
        if spec is None:  # a user factor file may have replaced the catalogue
            return None
        return _from_row(name, "known", spec, prec, f"{k.name}: {spec.model_id} ({k.source})", k.kind)
    if k.params_b is None:
        return None
    return Resolution(name, "known", k.kind, None, k.params_b, k.params_b, prec, f"{k.name}: {k.params_basis} ({k.source})")


def _match(key: str, idx: _Index, ollama: bool) -> ModelSpec | None:
    variants = [f"{key}-instruct", f"{key}-it", f"{key}-chat"]
    order = [*variants, key] if ollama else [key, *variants]
    for k in order:
        if k in idx.exact:
            return idx.exact[k]
    b = _without_variants(key)
    if b in idx.base:
        return idx.base[b]
    # A newer version or an MoE's active count left out: "mistral-7b-instruct" -> "...-v0.3",
    # "qwen-3-30b" -> "qwen-3-30b-a3b-instruct-2507". Only suffixes that do not change the size.
    hits = []
    prefix = key + "-"
    for k in idx.keys[bisect.bisect_left(idx.keys, prefix) :]:  # sorted: the keys with this prefix are adjacent
        if not k.startswith(prefix):
            break
        rest = k[len(prefix) :].split("-")
        if all(t in _VARIANT_TOKENS or _SUFFIX.fullmatch(t) for t in rest):
            hits.append(k)
    if hits:
        return idx.exact[max(hits, key=lambda k: ("instruct" in k or "-it" in k, k))]
    return None


def resolve(name: str, factors: FactorSet) -> Resolution:
    """What `name` means to the estimator (see the module docstring for the order of the rules)."""
    return _resolve_cached(name, factors.models)  # on every metered call: cached per (name, catalogue)


@functools.lru_cache(maxsize=4096)
def _resolve_cached(name: str, models: Repository[ModelSpec]) -> Resolution:
    spec = models.find(name)
    if spec is not None:
        return _from_row(name, "catalogue", spec, None, f"catalogue row {spec.model_id}")
    idx = _index(models)
    if len(name) > MAX_NAME_CHARS:
        return _generic(name[:MAX_NAME_CHARS], idx)
    known = known_names()
    ollama = _ollama_tag(name) or name.strip().lower() in known
    precision = precision_of(name)
    for c in _candidates(name):
        spec = models.find(c)
        if spec is not None:
            return _from_row(name, "catalogue", spec, precision, f"catalogue row {spec.model_id} (from {c!r})")
        k = known.get(c.lower())
        if k is not None and (r := _known(name, k, models)) is not None:
            return r
    for c in _candidates(name):
        key = canonical(c)
        if not key:
            continue
        spec = _match(key, idx, ollama)
        if spec is not None:
            prec = precision or _ollama_default_precision(name)
            said = f", {prec} from the name" if prec else ""
            return _from_row(name, "matched", spec, prec, f"catalogue row {spec.model_id} by normalised name {key!r}{said}")
    size = size_of(name)
    if size is not None:
        active, total = size
        prec = precision or _ollama_default_precision(name) or "bf16"
        kind: Kind = "embedding" if is_embedding(name) else "chat"
        what = f"{total:g}B total, {active:g}B active" if active != total else f"{total:g}B"
        return Resolution(
            name,
            "name",
            kind,
            None,
            Interval.point(active),
            Interval.point(total),
            prec,
            f"{what}, {prec}, read from the name",
        )
    return _generic(name, idx)


def _generic(name: str, idx: _Index) -> Resolution:
    if is_embedding(name):
        k = known_names()["text-embedding-3-small"]
        assert k.params_b is not None
        return Resolution(
            name,
            "generic",
            "embedding",
            None,
            k.params_b,
            k.params_b,
            None,
            f"unknown embedding model: {k.params_basis} range",
        )
    a, t = idx.generic_active, idx.generic_total
    note = f"unknown model: active {a.low:.3g}-{a.high:.3g}B (mid {a.mid:.3g}B), the 10th-90th percentiles of the catalogue"
    return Resolution(name, "generic", "chat", None, a, t, None, note)


__all__ = ["Resolution", "canonical", "is_embedding", "known_names", "precision_of", "resolve", "size_of"]
