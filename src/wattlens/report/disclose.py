"""`wattlens disclose`: the energy section of a general-purpose model's technical documentation.

The EU AI Act (Regulation 2024/1689, Annex XI section 1(2)(e)) asks providers of general-purpose
AI models to document the known or estimated energy consumption of the model. This module
assembles it from wattlens' own records: training runs measured with `wattlens run --json`
(or figures entered by hand, marked as such), inference from the ledger or the estimator, and
the model's Energy Score, each with its method and boundary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattlens.context import Context
from wattlens.errors import ConfigError, InputError
from wattlens.report import numbers
from wattlens.units import Interval

# Tokens of one query in the inference estimate, by kind of model: a chat turn, and an embedding
# query (input only: the AI Energy Score's sentence-similarity sentences are of this order).
QUERY_TOKENS = {"chat": (500, 300), "embedding": (40, 0)}
# Energy Score tasks that measure each kind of model; a score of another task does not describe it.
SCORE_TASKS = {"chat": ("text-generation",), "embedding": ("sentence-similarity", "feature-extraction")}
PARAM_KEYS = ("active_params_b", "total_params_b", "precision", "kind")


@dataclass(frozen=True)
class ModelFacts:
    """What the model is to the estimator: kind, size, precision, and where that came from."""

    model: str
    kind: str  # chat | embedding
    active_params_b: float | None  # None: the catalogue row's (an interval) is used
    total_params_b: float | None
    precision: str | None
    basis: str


def params_file(path: str | Path, model: str) -> dict[str, Any]:
    """A model's parameters from a local TOML file: `[model_params."NAME"]`, or the gateway config's
    `[upstreams.model_params."NAME"]` (the same keys: active_params_b, total_params_b, precision; kind)."""
    from wattlens.config import check_keys, read_toml

    data = read_toml(path, "model parameters")
    tables = [data.get("model_params") or {}] + [u.get("model_params") or {} for u in data.get("upstreams") or []]
    for t in tables:
        if model in t:
            check_keys(t[model], PARAM_KEYS, f"{path}: model_params.{model}")
            if "active_params_b" not in t[model]:
                raise ConfigError(f"{path}: model_params.{model} needs active_params_b (billions)")
            return dict(t[model])
    raise ConfigError(f'{path} has no [model_params."{model}"] table (nor one under [[upstreams]])')


def model_facts(
    model: str,
    context: Context,
    active_params_b: float | None = None,
    total_params_b: float | None = None,
    precision: str | None = None,
    kind: str | None = None,
    from_file: str | None = None,
) -> ModelFacts:
    """The model as the provider describes it (command line, then a local file), else as the catalogue knows it."""
    from wattlens.estimate.names import is_embedding, resolve

    if kind is not None and kind not in QUERY_TOKENS:
        raise InputError(f"--kind takes chat or embedding, got {kind!r}")
    basis = "given on the command line"
    if active_params_b is None and from_file:
        p = params_file(from_file, model)
        active_params_b = float(p["active_params_b"])
        total_params_b = total_params_b or (float(p["total_params_b"]) if p.get("total_params_b") else None)
        precision = precision or p.get("precision")
        kind = kind or p.get("kind")
        basis = f"given by the provider in {from_file}"
    if active_params_b is not None:
        if active_params_b <= 0 or (total_params_b is not None and total_params_b < active_params_b):
            raise InputError("parameters must be positive, and total parameters at least the active ones")
        k = kind or ("embedding" if is_embedding(model) else "chat")
        return ModelFacts(model, k, active_params_b, total_params_b or active_params_b, precision, basis)
    res = resolve(model, context.factors)
    if not res.known:
        raise InputError(
            f"{model!r} is not in the catalogue and its size cannot be read from its name: give "
            "--active-params (billions; with --total-params for a mixture of experts, --precision) "
            "or --model-params FILE"
        )
    return ModelFacts(model, kind or res.kind, None, None, precision, res.note)


def _iv(d: dict[str, float]) -> Interval:
    return Interval(float(d["low"]), float(d["mid"]), float(d["high"]))


def training(receipts: Sequence[str | Path], entered_kwh: float | None, entered_method: str) -> dict[str, Any] | None:
    """Sum the receipts of training runs (from `wattlens run --json`), or take an entered figure."""
    if receipts:
        energy, carbon, methods, zones = Interval(0, 0, 0), Interval(0, 0, 0), set(), set()
        for p in receipts:
            try:
                fp = json.loads(Path(p).read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise InputError(f"cannot read the training receipt {p}: {e}") from e
            energy = energy + _iv(fp["facility_wh"])
            carbon = carbon + _iv(fp["carbon_g"]["location"])
            methods.add(fp.get("method", "estimated"))
            zones.add(str((fp.get("grid") or {}).get("zone") or ""))
        return {
            "energy_kwh": (energy / 1000.0).as_dict(),
            "carbon_kg": (carbon / 1000.0).as_dict(),
            "method": methods.pop() if len(methods) == 1 else "mixed",
            "runs": len(receipts),
            "basis": "wattlens run receipts (facility energy)",
            "zone": ", ".join(sorted(z for z in zones if z)),
        }
    if entered_kwh is not None:
        if entered_kwh < 0:
            raise InputError("training energy must not be negative")
        return {
            "energy_kwh": Interval.point(entered_kwh).as_dict(),
            "carbon_kg": None,
            "method": entered_method,
            "runs": None,
            "basis": "entered by the provider",
        }
    return None


def inference(
    model: str,
    records: Iterable[dict[str, Any]] | None,
    context: Context | None = None,
    facts: ModelFacts | None = None,
    input_tokens: int | None = None,
) -> dict[str, Any]:
    """Per 1,000 queries: from the ledger's records of this model when there are any, else estimated.

    The estimate is the model's kind's: a chat turn (500 input, 300 output tokens) or an embedding
    query (40 input tokens, no output).
    """
    from wattlens.ledger.summary import summarise

    ctx = context or Context()
    facts = facts or model_facts(model, ctx)

    if records is not None:
        mine = [r for r in records if model in (r.get("model_served"), r.get("model_requested"))]
        if mine:
            t = summarise(mine)["total"]
            n = t["with_receipt"]
            return {
                "per_1000_queries_wh": {b: t["facility_wh"][b] / n * 1000 for b in ("low", "mid", "high")},
                "queries": n,
                "methods": t["methods"],
                "kind": facts.kind,
                "basis": "ledger records (facility energy)",
            }
    from wattlens.receipt import LLMRequest, estimate_footprint

    tin, tout = QUERY_TOKENS[facts.kind]
    tin = input_tokens if input_tokens is not None else tin
    req = LLMRequest(
        model=model,
        input_tokens=tin,
        output_tokens=tout,
        active_params_b=facts.active_params_b,
        total_params_b=facts.total_params_b,
        precision=facts.precision,
    )
    fp = estimate_footprint(req, ctx)
    what = f"{tin} input and {tout} output tokens per query" if tout else f"{tin} input tokens per query (embedding)"
    return {
        "per_1000_queries_wh": (fp.facility_wh * 1000).as_dict(),
        "queries": None,
        "methods": {"estimated": 1},
        "kind": facts.kind,
        "basis": f"wattlens estimator, {what}; model: {facts.basis}",
    }


def check_score(facts: ModelFacts, score: dict[str, Any] | None) -> None:
    """An Energy Score of another task than the model's kind does not describe it: refuse it."""
    if score is None:
        return
    task = str(score.get("task", ""))
    if task not in SCORE_TASKS[facts.kind]:
        raise InputError(
            f"the Energy Score is for the task {task!r}, but {facts.model} is a {facts.kind} model "
            f"(scored on {' or '.join(SCORE_TASKS[facts.kind])}): give that score, or --kind if the kind is wrong"
        )


def document(
    model: str, train: dict[str, Any] | None, infer: dict[str, Any], score: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "model": model,
        "regulation": "EU AI Act (Regulation 2024/1689), Annex XI 1(2)(e): energy consumption",
        "training": train,
        "inference": infer,
        "energy_score": score,
    }


def markdown(doc: dict[str, Any]) -> str:
    def iv(d: dict[str, float] | None, unit: str) -> str:
        if d is None:
            return "not documented"
        if unit == "kWh":
            d, unit = {b: v * 1000 for b, v in d.items()}, "Wh"
        if unit == "kgCO2e":
            d, unit = {b: v * 1000 for b, v in d.items()}, "gCO2e"
        return numbers.iv(d, unit, 3)

    t, i, s = doc["training"], doc["inference"], doc["energy_score"]
    out = [
        f"## Energy consumption: {doc['model']}",
        "",
        f"Prepared with wattlens for: {doc['regulation']}.",
        "",
        "### Training",
        "",
    ]
    if t is None:
        out.append("Training energy: not documented (no `wattlens run` receipts or entered figure were given).")
    else:
        out.append(
            f"- Energy: {iv(t['energy_kwh'], 'kWh')}; method: {t['method']}; basis: {t['basis']}"
            + (f" ({t['runs']} runs)" if t.get("runs") else "")
            + "."
        )
        out.append(f"- Carbon (location-based): {iv(t['carbon_kg'], 'kgCO2e')}.")
    out += [
        "",
        "### Inference",
        "",
        f"- Energy per 1,000 {'embedding ' if i.get('kind') == 'embedding' else ''}queries: "
        f"{iv(i['per_1000_queries_wh'], 'Wh')}; basis: {i['basis']}; "
        + (
            "method: estimated."
            if i["queries"] is None
            else f"{i['queries']:,} receipts, by method: {numbers.counts(i['methods'], 'receipts')}."
        ),
    ]
    if s:
        low, high = s.get("wh_per_1000_low"), s.get("wh_per_1000_high")
        bounds = f" ({numbers.number(low, 3)}–{numbers.number(high, 3)})" if low is not None and high is not None else ""
        out += [
            "",
            "### Energy Score",
            "",
            f"- {s['task']}: {numbers.number(s['wh_per_1000'], 3)}{bounds} Wh per 1,000 queries, "
            f"{s['stars']}/5 stars ({s['scale']} scale), {s['method']}, {s['boundary']}, {s['date']}.",
        ]
        mid = i["per_1000_queries_wh"]["mid"]
        if mid:
            out.append(
                f"- The score measures {i.get('kind', 'chat')} queries one at a time on {s.get('hardware', 'its hardware')} "
                f"({s['boundary']}); the inference figure above is for a busy, batched service at the facility "
                f"boundary. The score is {numbers.number(s['wh_per_1000'] / mid, 2)} × that figure; "
                "docs/estimator.md explains the gap."
            )
    out += [
        "",
        "Boundary: facility energy (IT energy × PUE) unless stated; intervals carry the sensor accuracy "
        "or the estimator's cross-validated error. Method and formulas: wattlens docs/methodology.md.",
        "",
    ]
    return "\n".join(out)
