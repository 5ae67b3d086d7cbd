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
from pathlib import Path
from typing import Any

from wattlens.context import Context
from wattlens.errors import InputError
from wattlens.units import Interval


def _iv(d: dict[str, float]) -> Interval:
    return Interval(float(d["low"]), float(d["mid"]), float(d["high"]))


def training(receipts: Sequence[str | Path], entered_kwh: float | None, entered_method: str) -> dict[str, Any] | None:
    """Sum the receipts of training runs (from `wattlens run --json`), or take an entered figure."""
    if receipts:
        energy, carbon, methods = Interval(0, 0, 0), Interval(0, 0, 0), set()
        for p in receipts:
            try:
                fp = json.loads(Path(p).read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise InputError(f"cannot read the training receipt {p}: {e}") from e
            energy = energy + _iv(fp["facility_wh"])
            carbon = carbon + _iv(fp["carbon_g"]["location"])
            methods.add(fp.get("method", "estimated"))
        return {
            "energy_kwh": (energy / 1000.0).as_dict(),
            "carbon_kg": (carbon / 1000.0).as_dict(),
            "method": methods.pop() if len(methods) == 1 else "mixed",
            "runs": len(receipts),
            "basis": "wattlens run receipts (facility energy)",
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


def inference(model: str, records: Iterable[dict[str, Any]] | None, context: Context | None = None) -> dict[str, Any]:
    """Per 1,000 queries: from the ledger's records of this model when there are any, else estimated."""
    from wattlens.ledger.summary import summarise

    if records is not None:
        mine = [r for r in records if model in (r.get("model_served"), r.get("model_requested"))]
        if mine:
            t = summarise(mine)["total"]
            n = t["with_receipt"]
            return {
                "per_1000_queries_wh": {b: t["facility_wh"][b] / n * 1000 for b in ("low", "mid", "high")},
                "queries": n,
                "methods": t["methods"],
                "basis": "ledger records (facility energy)",
            }
    from wattlens.receipt import LLMRequest, estimate_footprint

    fp = estimate_footprint(LLMRequest(model=model, input_tokens=500, output_tokens=300), context or Context())
    return {
        "per_1000_queries_wh": (fp.facility_wh * 1000).as_dict(),
        "queries": None,
        "methods": {"estimated": 1},
        "basis": "wattlens estimator, 500 input and 300 output tokens per query",
    }


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
        return "not documented" if d is None else f"{d['mid']:.4g} {unit} (interval {d['low']:.4g}–{d['high']:.4g})"

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
        f"- Energy per 1,000 queries: {iv(i['per_1000_queries_wh'], 'Wh')}; basis: "
        f"{i['basis']}; receipts by method: {i['methods']}.",
    ]
    if s:
        out += [
            "",
            "### Energy Score",
            "",
            f"- {s['task']}: {s['wh_per_1000']:.3g} Wh per 1,000 queries, "
            f"{s['stars']}/5 stars ({s['scale']} scale), {s['method']}, {s['boundary']}, {s['date']}.",
        ]
    out += [
        "",
        "Boundary: facility energy (IT energy × PUE) unless stated; intervals carry the sensor accuracy "
        "or the estimator's cross-validated error. Method and formulas: wattlens docs/methodology.md.",
        "",
    ]
    return "\n".join(out)
