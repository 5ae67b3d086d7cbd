"""`wattlens plan`: project AI usage forward into energy, power, water and carbon.

For year y = 1..N of a scenario:
  users_y        = users × (1 + growth)^(y-1)
  queries_y      = users_y × queries per user per day × 365
  energy_MWh     = queries_y × facility Wh per query × (1 − router saving) / 10^6
  average_MW     = energy_MWh / 8,760 h
  peak_MW        = average_MW × peak-to-mean ratio (tokens per minute in the Azure trace)
  water_m3       = queries_y × mL per query × (1 − router saving) / 10^6
  carbon_t       = energy_MWh × intensity × (1 − decarbonisation)^(y-1) / 1,000   (g/kWh = kg/MWh)
  market_t       = carbon_t × (1 − renewable share)
Per-query figures come from the estimator for each model of the mix, weighted by its share.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wattlens.context import Context, Place
from wattlens.errors import ConfigError, InputError
from wattlens.receipt import LLMRequest, estimate_footprint
from wattlens.units import Interval

HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class Scenario:
    name: str = "base"
    users: float = 10_000
    queries_per_user_per_day: float = 10
    input_tokens: int = 500
    output_tokens: int = 300
    models: dict[str, float] = field(default_factory=lambda: {"gpt-4o-mini": 1.0})
    growth_per_year: float = 0.0
    years: int = 5
    zone: str | None = None
    region: str | None = None
    decarbonisation_per_year: float = 0.0
    renewable_share: float | None = None
    router_saving: float = 0.0

    def check(self) -> None:
        if not 1 <= self.years <= 10:
            raise InputError("years must be between 1 and 10")
        if self.users < 0 or self.queries_per_user_per_day < 0:
            raise InputError("users and queries per day must not be negative")
        total = sum(self.models.values())
        if not self.models or abs(total - 1.0) > 1e-6:
            raise InputError(f"model shares must sum to 1, got {total:g} ({self.models})")
        for name, v in (("decarbonisation", self.decarbonisation_per_year), ("router saving", self.router_saving)):
            if not 0.0 <= v < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {v}")


@dataclass(frozen=True)
class ModelAssumption:
    """What the estimate of one model of the mix assumed: printed with the plan's result."""

    model: str
    share: float
    facility_wh: Interval  # per query
    hardware: str
    gpus: int | None
    precision: str
    active_params_b: float | None


@dataclass(frozen=True)
class PerQuery:
    facility_wh: Interval
    water_ml: Interval
    intensity_g_per_kwh: float
    zone: str
    models: tuple[ModelAssumption, ...] = ()
    grid_year: int | None = None
    grid_source: str = ""


@dataclass(frozen=True)
class Year:
    year: int
    users: float
    queries: float
    energy_mwh: Interval
    average_mw: Interval
    peak_mw: Interval
    water_m3: Interval
    carbon_t: Interval
    carbon_market_t: Interval
    zone: str = ""  # the grid zone the per-query figures were priced in


@functools.lru_cache(maxsize=1)
def peak_to_mean() -> float:
    """Peak minute over mean minute of tokens processed in the shipped Azure trace (one hour)."""
    from wattlens.report.demo import trace

    per_minute: Counter[str] = Counter()
    for r in trace():
        per_minute[r.ts.strftime("%H:%M")] += r.context_tokens + r.generated_tokens
    values = list(per_minute.values())[1:-1]  # drop the partial first and last minutes
    return max(values) / (sum(values) / len(values))


def per_query(s: Scenario, context: Context | None = None) -> PerQuery:
    """Facility energy and water of one query of the scenario's model mix, in the given context."""
    ctx = (context or Context()).at(Place(zone=s.zone, region=s.region))
    energy = Interval(0.0, 0.0, 0.0)
    water = Interval(0.0, 0.0, 0.0)
    zone, intensity, year, source = "", 0.0, None, ""
    assumed = []
    for model, share in s.models.items():
        fp = estimate_footprint(LLMRequest(model=model, input_tokens=s.input_tokens, output_tokens=s.output_tokens), ctx)
        energy = energy + fp.facility_wh * share
        water = water + fp.water_ml * share
        zone, intensity, year, source = fp.grid.zone, fp.grid.intensity_g_per_kwh, fp.grid.year, fp.grid.source
        a = getattr(fp, "assumptions", None) or {}
        spec = ctx.factors.models.find(model)
        assumed.append(
            ModelAssumption(
                model=fp.model or model,
                share=share,
                facility_wh=fp.facility_wh,
                hardware=str(a.get("hardware") or (spec.hardware if spec else "H100-SXM")),
                gpus=int(a["gpus"]) if a.get("gpus") is not None else None,
                precision=str(a.get("precision") or (spec.precision if spec else "bf16")),
                active_params_b=float(a["active_params_b"])
                if a.get("active_params_b") is not None
                else (spec.active_params_b.mid if spec else None),
            )
        )
    return PerQuery(energy, water, intensity, zone, tuple(assumed), year, source)


SMALLER = ("smaller", "lighter", "leaner", "more efficient", "less energy", "small model", "efficient model")


def check_labels(results: list[tuple[Scenario, PerQuery]]) -> None:
    """A scenario whose name claims a smaller or lighter model must use less energy per query than the base.

    The base is the scenario named "base", else the first. Raises InputError with both figures otherwise.
    """
    if len(results) < 2:
        return
    base_s, base_q = next(((s, q) for s, q in results if s.name == "base"), results[0])
    for s, q in results:
        if s is base_s:
            continue
        words = s.name.lower()
        claims = any(w in " ".join(words.replace("-", " ").split()) for w in SMALLER)  # "small team" claims nothing
        if claims and not q.facility_wh.mid < base_q.facility_wh.mid:
            from wattlens.report.numbers import quantity

            raise InputError(
                f"scenario {s.name!r} is labelled as smaller but uses {quantity(q.facility_wh.mid, 'Wh', 3)} per "
                f"query ({', '.join(s.models)}) against {quantity(base_q.facility_wh.mid, 'Wh', 3)} for "
                f"{base_s.name!r} ({', '.join(base_s.models)}): rename it or choose a model that uses less energy"
            )


def project(
    s: Scenario, q: PerQuery | None = None, peak_ratio: float | None = None, context: Context | None = None
) -> list[Year]:
    s.check()
    q = q or per_query(s, context)
    ratio = peak_ratio if peak_ratio is not None else peak_to_mean()
    keep = 1.0 - s.router_saving
    rows = []
    for y in range(1, s.years + 1):
        users = s.users * (1.0 + s.growth_per_year) ** (y - 1)
        queries = users * s.queries_per_user_per_day * 365.0
        mwh = q.facility_wh * (queries * keep / 1e6)
        avg = mwh / HOURS_PER_YEAR
        intensity = q.intensity_g_per_kwh * (1.0 - s.decarbonisation_per_year) ** (y - 1)
        carbon = mwh * (intensity / 1000.0)
        market = carbon * (1.0 - s.renewable_share) if s.renewable_share is not None else carbon
        water = q.water_ml * (queries * keep / 1e6)
        rows.append(Year(y, users, queries, mwh, avg, avg * ratio, water, carbon, market, q.zone))
    return rows


def load_scenarios(path: str | Path, base: Scenario) -> list[Scenario]:
    """[[scenarios]] tables in a TOML file, each overriding fields of the base scenario."""
    from wattlens.config import read_toml

    data = read_toml(path, "scenarios")
    known = set(Scenario.__dataclass_fields__)
    out = []
    for i, d in enumerate(data.get("scenarios", [])):
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{path}: scenario #{i + 1} has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        out.append(replace(base, **d))
    if not out:
        raise ConfigError(f"{path}: no [[scenarios]] found")
    return out


def describe(s: Scenario, q: PerQuery) -> dict[str, Any]:
    """The assumptions of a scenario's figures: model mix with hardware, tokens, grid."""
    return {
        "models": "; ".join(
            f"{m.model}={m.share:g}" + f" ({m.hardware}" + (f" ×{m.gpus}" if m.gpus else "") + f", {m.precision}"
            f"{f', {m.active_params_b:.3g}B active' if m.active_params_b is not None else ''})"
            for m in q.models
        ),
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "grid": f"{q.zone} {q.grid_year or ''} {q.intensity_g_per_kwh:.0f} gCO2e/kWh".replace("  ", " "),
        "facility_wh_per_query_mid": q.facility_wh.mid,
    }


def as_rows(s: Scenario, years: list[Year], q: PerQuery | None = None) -> list[dict[str, Any]]:
    rows = []
    assumed = describe(s, q) if q is not None else {}
    for y in years:
        row: dict[str, Any] = {
            "scenario": s.name,
            "year": y.year,
            "zone": y.zone,
            "users": round(y.users),
            "queries": round(y.queries),
            **assumed,
        }
        for name in ("energy_mwh", "average_mw", "peak_mw", "water_m3", "carbon_t", "carbon_market_t"):
            iv = getattr(y, name)
            row.update({f"{name}_low": iv.low, f"{name}_mid": iv.mid, f"{name}_high": iv.high})
        rows.append(row)
    return rows


def figure(results: list[tuple[Scenario, list[Year]]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError("figures need matplotlib: pip install 'wattlens[report]'") from e
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=120)
    for s, years in results:
        xs = [y.year for y in years]
        for ax, attr, label in (
            (axes[0], "energy_mwh", "energy (MWh/year)"),
            (axes[1], "peak_mw", "peak power (MW)"),
            (axes[2], "carbon_t", "carbon (t CO2e/year, location)"),
        ):
            mids = [getattr(y, attr).mid for y in years]
            ax.plot(xs, mids, marker="o", label=s.name)
            ax.fill_between(xs, [getattr(y, attr).low for y in years], [getattr(y, attr).high for y in years], alpha=0.15)
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("year")
            ax.set_yscale("log")  # the intervals span an order of magnitude: a log axis keeps the lines readable
            ax.set_xticks(xs)
    axes[0].legend(fontsize=8)
    fig.suptitle("wattlens plan: mid lines, low–high bands", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
