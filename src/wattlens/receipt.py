"""Receipts for estimated LLM requests: catalogue + estimator + impacts in one call.

Every path that estimates a request (the CLI, metering for the gateway and the SDK wrapper,
plans, the demo) comes through `estimate_footprint`, so the same request in the same context
gets the same receipt everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattlens.context import Context, Place
from wattlens.errors import InputError
from wattlens.estimate import (
    _HOST_FACTOR,
    _IDLE_FACTOR,
    BOUNDARY_PARTS,
    PreparedRequest,
    prepare_request,
    scale_to_boundary,
    serving_profile,
)
from wattlens.footprint import Footprint, Grid, Tokens, new_footprint, new_tokens
from wattlens.impacts import EmbodiedShare, SiteBasis, footprint, site_basis
from wattlens.units import S_PER_YEAR, WH_PER_KWH, Interval, _sig6, independent_product, interval, sig6_all, spread_factor

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.factors.records import Hardware
    from wattlens.grid import GridReading

HOST_SERVER = {"B200": "HGX-B200-host", "GB200": "HGX-B200-host"}
GPUS_PER_HOST = 8


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One LLM request as the estimator needs it; unknown fields come from the catalogue."""

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    active_params_b: float | None = None
    total_params_b: float | None = None
    precision: str | None = None
    hardware: str | None = None
    gpus: int | None = None
    batch_size: float | None = None


def estimate_footprint(
    request: LLMRequest,
    where: Place | Context | None = None,
    *,
    boundary: str | None = None,
    factors: FactorSet | None = None,
    embodied: bool = True,
    at: dt.datetime | None = None,
    unknown_generic: bool = False,
) -> Footprint:
    """The receipt of one estimated LLM request (at time `at`, for a time-resolved grid feed).

    unknown_generic: a model name that nothing resolves gets a generic receipt (warning
    model-unknown-generic) instead of UnknownKeyError; metering sets it, so a 200 always has a receipt.

    where: a Place (with the built-in tables, or `factors`) or a whole Context from the edge.
    boundary: "accelerator", "server" or "datacenter" (server + idle capacity + facility PUE);
    by default the context's (datacenter).
    """
    if isinstance(where, Context):
        ctx = where if factors is None else dataclasses.replace(where, factors=factors)
    else:
        ctx = _context(where or Place(), factors)
    boundary = boundary or ctx.boundary
    plan = _plan(request, ctx, boundary, embodied, unknown_generic)
    fast = plan.fast
    if fast is not None:
        figures = fast.figures(plan, request, ctx, at)
        if figures is not None:
            fp: Footprint = Receipt(plan, figures, None)._build()
            return fp
    return _receipt(plan, request, ctx, boundary, at)


def _receipt(plan: _Plan, request: LLMRequest, ctx: Context, boundary: str, at: dt.datetime | None) -> Footprint:
    """The receipt step by step, on Interval arithmetic: for what the float path does not take
    (a negative factor in a user's table) and the reference its figures are checked against."""
    est = plan.prepared.evaluate(
        request.input_tokens, request.output_tokens + request.reasoning_tokens, request.cached_input_tokens
    )
    shares: Sequence[EmbodiedShare] = ()
    if plan.hosts is not None:
        # accelerator_s already counts every GPU of the replica; the host is shared by 8 GPUs.
        acc_hw, host_hw = plan.hosts
        shares = (
            EmbodiedShare(acc_hw, 1.0, est.accelerator_s),
            EmbodiedShare(host_hw, 1.0 / GPUS_PER_HOST, est.accelerator_s),
        )
    return footprint(
        scale_to_boundary(est.accelerator_wh, boundary, fleet=est.fleet),
        plan.site.at(ctx, at),
        method="estimated",
        boundary=plan.boundary_parts,
        factors_version=ctx.factors.version,
        embodied=shares,
        model=plan.model,
        tokens=Tokens(request.input_tokens, request.cached_input_tokens, request.output_tokens, request.reasoning_tokens),
        warnings=plan.warnings + est.warnings if est.warnings else plan.warnings,
        assumptions=est.assumptions,
    )


class _Priced:
    """What a receipt takes from one grid reading (the annual feed returns the same one every time)."""

    __slots__ = ("grid", "k_location", "k_marginal", "k_market", "reading", "warnings", "water_offsite")

    def __init__(self, plan: _Plan, reading: GridReading, include_facility: bool) -> None:
        site, g = plan.site, reading
        self.reading = reading
        self.grid = Grid(
            g.zone, g.year, g.intensity_g_per_kwh, dict(g.mix), g.resolution, g.basis, g.source, g.at, g.marginal_g_per_kwh
        )
        # impacts.footprint's codes: the plan's, the estimator's, the site's (zone, reading, other), the boundary's
        sw = (
            site.zone_warnings + g.warnings + site.other_warnings if g.warnings else site.zone_warnings + site.other_warnings
        )
        codes = [*plan.warnings, *plan.prepared.warnings, *sw]
        if not include_facility:
            codes.append("boundary-excludes-facility")
        self.warnings = tuple(dict.fromkeys(codes))
        # impacts.carbon_g and market_carbon_g: a scalar per kWh
        intensity = g.intensity_g_per_kwh
        self.k_location = float(intensity / WH_PER_KWH)
        if site.market_g_per_kwh is not None:
            self.k_market = float(site.market_g_per_kwh / WH_PER_KWH)
        elif site.renewable_share is not None:
            self.k_market = float(intensity * (1.0 - site.renewable_share) / WH_PER_KWH)
        else:
            self.k_market = self.k_location
        m = g.marginal_g_per_kwh
        self.k_marginal = float(m / WH_PER_KWH) if m is not None else None
        self.water_offsite = float(site.zone.water_offsite_l_per_kwh)


class _Fast:
    """The receipt on plain floats: the same operations, in the same order, as the Interval arithmetic
    of scale_to_boundary and impacts.footprint, with one Interval built per figure. Taken only where
    every factor is non-negative (where Interval arithmetic multiplies bound by bound)."""

    __slots__ = (
        "assumed",
        "embodied",
        "facility",
        "it",
        "priced",
        "pue",
        "wue",
    )

    def __init__(self, plan: _Plan, boundary: str) -> None:
        site, prepared = plan.site, plan.prepared
        # scale_to_boundary's factors (fleet, host, idle), the PUE and the WUE, log spreads worked out once
        it: list[Interval] = []
        if boundary != "accelerator":
            if prepared.fleet.low != 1.0 or prepared.fleet.high != 1.0:
                it.append(prepared.fleet)
            it.append(_HOST_FACTOR)
            if boundary == "datacenter":
                it.append(_IDLE_FACTOR)
        self.it = tuple(spread_factor(f.low, f.mid, f.high) for f in it)
        self.facility = "facility" in plan.boundary_parts
        self.pue = (spread_factor(site.pue.low, site.pue.mid, site.pue.high),)
        self.wue = (spread_factor(site.wue_l_per_kwh.low, site.wue_l_per_kwh.mid, site.wue_l_per_kwh.high),)
        # impacts.embodied_g per share: emissions per occupied second (low, mid, high) and 1000 x count
        emb: list[tuple[float, float, float, float]] = []
        for hw, count in zip(plan.hosts or (), (1.0, 1.0 / GPUS_PER_HOST), strict=False):
            kg, life = hw.embodied_kg, hw.lifetime_years
            emb.append(
                (
                    kg.low / (life.high * S_PER_YEAR),
                    kg.mid / (life.mid * S_PER_YEAR),
                    kg.high / (life.low * S_PER_YEAR),
                    1000.0 * count,
                )
            )
        self.embodied = tuple(emb)
        case = prepared.case
        # RequestEstimate.assumptions, less the two figures that depend on the tokens
        self.assumed = (
            prepared.basis_name[0],
            prepared.acc.name,
            prepared.n_gpus,
            case.precision,
            round(case.active[1], 3),
            round(prepared.mid.c_kv / 1e3, 1),
            prepared.basis_name[1],
            case.profile.prefill_efficiency[1],
            prepared.fleet.mid,
        )
        self.priced: _Priced | None = None

    @staticmethod
    def eligible(plan: _Plan) -> bool:
        site = plan.site
        lows = [site.pue.low, site.wue_l_per_kwh.low, _HOST_FACTOR.low, _IDLE_FACTOR.low]
        for hw in plan.hosts or ():
            lows += [hw.embodied_kg.low, hw.lifetime_years.low]
        return (
            all(x >= 0 for x in lows)
            and float(site.zone.water_offsite_l_per_kwh) >= 0
            and (site.market_g_per_kwh is None or site.market_g_per_kwh >= 0)
        )

    def figures(self, plan: _Plan, request: LLMRequest, ctx: Context, at: dt.datetime | None) -> _Figures | None:
        """Every figure of the receipt as floats, or None where the float path does not apply."""
        site = plan.site
        reading = ctx.grid.reading(site.zone, site.region_row, at)
        priced = self.priced
        if priced is None or priced.reading is not reading:
            priced = self.priced = _Priced(plan, reading, self.facility)
        k_loc, k_mkt, k_marg = priced.k_location, priced.k_market, priced.k_marginal
        if not (k_loc >= 0 and k_mkt >= 0 and (k_marg is None or k_marg >= 0)):
            return None
        inp, out, cached, reasoning = (
            request.input_tokens,
            request.output_tokens,
            request.cached_input_tokens,
            request.reasoning_tokens,
        )
        a_lo, a_mid, a_hi, s_lo, s_mid, s_hi, batch, step = plan.prepared.figures(inp, out + reasoning, cached)
        if not (a_lo >= 0 and s_lo >= 0):
            return None
        # scale_to_boundary: x fleet factor, x (1 + host ratio), x (1 + idle ratio), each an independent factor
        e_lo, e_mid, e_hi = independent_product(a_lo, a_mid, a_hi, self.it) if self.it else (a_lo, a_mid, a_hi)
        if self.facility:
            f_lo, f_mid, f_hi = independent_product(e_lo, e_mid, e_hi, self.pue)
        else:
            f_lo, f_mid, f_hi = e_lo, e_mid, e_hi
        lo = mid = hi = 0.0
        for p_lo, p_mid, p_hi, k in self.embodied:
            lo, mid, hi = lo + p_lo * s_lo * k, mid + p_mid * s_mid * k, hi + p_hi * s_hi * k
        w, x = self.wue, priced.water_offsite
        return (
            priced,
            (inp, cached, out, reasoning),
            (
                e_lo,
                e_mid,
                e_hi,
                f_lo,
                f_mid,
                f_hi,
                f_lo * k_loc,
                f_mid * k_loc,
                f_hi * k_loc,
                f_lo * k_mkt,
                f_mid * k_mkt,
                f_hi * k_mkt,
                lo,
                mid,
                hi,
                *independent_product(e_lo, e_mid, e_hi, w),
                f_lo * x,
                f_mid * x,
                f_hi * x,
            ),
            (f_lo * k_marg, f_mid * k_marg, f_hi * k_marg) if k_marg is not None else None,
            self.assumptions(batch, step),
        )

    def assumptions(self, batch: float, step: float) -> dict[str, Any]:
        """RequestEstimate.assumptions from the replica's batch and the decode step."""
        a = self.assumed
        n = a[2]
        return {
            "serving_profile": a[0],
            "hardware": a[1],
            "gpus": n,
            "batch_per_gpu": round(batch / n, 2),
            "precision": a[3],
            "active_params_b": a[4],
            "kv_kb_per_token": a[5],
            "architecture": a[6],
            "prefill_efficiency": a[7],
            "tokens_per_s_per_gpu": round(batch / n / step, 1),
            "fleet_factor": a[8],
        }


# (grid and warnings, tokens (input, cached, output, reasoning), the 21 bounds in the receipt's order,
#  the marginal carbon bounds or None, the assumptions)
_Figures = tuple[_Priced, tuple[int, int, int, int], tuple[float, ...], tuple[float, float, float] | None, dict[str, Any]]


class Receipt:
    """An estimated receipt's figures, as the Footprint or straight as its one JSON form.

    `as_dict` builds the dict from the floats (the same dict as `footprint.as_dict()`, checked by
    tests/test_receipt_speed.py) without building the Footprint's Interval objects first: a metered
    call that only hands the receipt on (SDK wrapper, adapters, ledger) pays for one form, not two.
    """

    __slots__ = ("_figures", "_fp", "plan")

    def __init__(self, plan: _Plan, figures: _Figures | None, fp: Footprint | None) -> None:
        self.plan, self._figures, self._fp = plan, figures, fp

    @property
    def footprint(self) -> Footprint:
        fp = self._fp
        if fp is None:
            fp = self._fp = self._build()
        return fp

    def _build(self) -> Footprint:
        priced, (inp, cached, out, reasoning), v, marginal, assumptions = self._figures  # type: ignore[misc]
        plan = self.plan
        location = interval(v[6], v[7], v[8])
        return new_footprint(
            interval(v[0], v[1], v[2]),
            interval(v[3], v[4], v[5]),
            location,
            location if v[6:9] == v[9:12] else interval(v[9], v[10], v[11]),
            interval(v[12], v[13], v[14]),
            interval(v[15], v[16], v[17]),
            interval(v[18], v[19], v[20]),
            priced.grid,
            "estimated",
            plan.receipt_parts,
            plan.factors.version,
            plan.model,
            new_tokens(inp, cached, out, reasoning),
            priced.warnings,
            interval(*marginal) if marginal is not None else None,
            assumptions,
        )

    def as_dict(self, warnings: Sequence[str] = ()) -> dict[str, Any]:
        """Footprint.as_dict of the receipt, with `warnings` (a caller's codes) added to its own."""
        if self._figures is None or self._fp is not None:
            fp = self.footprint
            if warnings:
                fp = dataclasses.replace(fp, warnings=tuple(dict.fromkeys((*fp.warnings, *warnings))))
            return fp.as_dict()
        priced, (inp, cached, out, reasoning), v, marginal, assumptions = self._figures
        if not sum(v) < _INF:  # the bounds are ordered and >= 0 by construction; NaN or inf: what Interval raises
            return self.footprint.as_dict()
        if v[6:9] == v[9:12]:  # market = location: rounded once
            r = sig6_all(v[:9] + v[12:])
            r[9:9] = r[6:9]
        else:
            r = sig6_all(v)
        plan = self.plan
        codes = priced.warnings if not warnings else tuple(dict.fromkeys((*priced.warnings, *warnings)))
        carbon = {
            "location": {"low": r[6], "mid": r[7], "high": r[8]},
            "market": {"low": r[9], "mid": r[10], "high": r[11]},
            "embodied": {"low": r[12], "mid": r[13], "high": r[14]},
        }
        grid = priced.grid
        d: dict[str, Any] = {
            "energy_wh": {"low": r[0], "mid": r[1], "high": r[2]},
            "facility_wh": {"low": r[3], "mid": r[4], "high": r[5]},
            "carbon_g": carbon,
            "water_ml": {
                "onsite": {"low": r[15], "mid": r[16], "high": r[17]},
                "offsite": {"low": r[18], "mid": r[19], "high": r[20]},
            },
            "grid": grid.as_dict(),
            "method": "estimated",
            "boundary": list(plan.receipt_parts),
        }
        if marginal is not None:
            if not all(-_INF < x < _INF for x in marginal):
                return self.footprint.as_dict()
            carbon["marginal"] = {"low": _sig6(marginal[0]), "mid": _sig6(marginal[1]), "high": _sig6(marginal[2])}
        if grid.resolution != "annual" and "grid-mix-annual" not in codes:
            from wattlens.grid import CARBON_FREE

            d["grid"]["cfe_share"] = round(sum(grid.mix.get(k, 0.0) for k in CARBON_FREE), 5)
        if plan.model is not None:
            d["model"] = plan.model
        d["tokens"] = {"input": inp, "cached_input": cached, "output": out, "reasoning": reasoning}
        d["assumptions"] = assumptions
        d["factors_version"] = plan.factors.version
        d["warnings"] = list(codes)
        return d


_INF = math.inf


def estimate_receipt(
    request: LLMRequest,
    where: Place | Context | None = None,
    *,
    boundary: str | None = None,
    factors: FactorSet | None = None,
    embodied: bool = True,
    at: dt.datetime | None = None,
    unknown_generic: bool = False,
) -> Receipt:
    """`estimate_footprint` as a Receipt: the same figures, with the JSON form built straight from them."""
    if isinstance(where, Context):
        ctx = where if factors is None else dataclasses.replace(where, factors=factors)
    else:
        ctx = _context(where or Place(), factors)
    boundary = boundary or ctx.boundary
    plan = _plan(request, ctx, boundary, embodied, unknown_generic)
    fast = plan.fast
    if fast is not None:
        figures = fast.figures(plan, request, ctx, at)
        if figures is not None:
            return Receipt(plan, figures, None)
    return Receipt(plan, None, _receipt(plan, request, ctx, boundary, at))


_CONTEXTS: dict[tuple[Place, int], tuple[FactorSet, Context]] = {}


def _context(place: Place, factors: FactorSet | None) -> Context:
    """The Context of a bare Place (built-in tables, annual feed), kept: a fresh one per call would
    also bring a fresh grid feed, whose readings the receipt's caches would never see again."""
    from wattlens.factors import builtin

    f = factors if factors is not None else builtin()
    key = (place, id(f))
    hit = _CONTEXTS.get(key)
    if hit is not None and hit[0] is f:
        return hit[1]
    ctx = Context(place, factors=f)
    if len(_CONTEXTS) >= 256:
        _CONTEXTS.clear()
    _CONTEXTS[key] = (f, ctx)
    return ctx


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a receipt needs besides the token counts and the time: the same for every request of one
    model in one context, so it is worked out once (name resolution, validation, site, hardware rows)."""

    factors: FactorSet  # the set the plan was made with (the cache is keyed by its identity)
    prepared: PreparedRequest
    site: SiteBasis
    boundary_parts: tuple[str, ...]
    hosts: tuple[Hardware, Hardware] | None  # accelerator and host rows for embodied emissions
    model: str | None
    warnings: tuple[str, ...]  # before the estimator's own
    receipt_parts: tuple[str, ...] = ()  # the receipt's boundary (impacts.footprint adds embodied)
    fast: _Fast | None = None  # the float path, where every factor is non-negative


_PLANS: dict[tuple[object, ...], _Plan] = {}
_PLANS_MAX = 1024


def _plan(request: LLMRequest, ctx: Context, boundary: str, embodied: bool, unknown_generic: bool) -> _Plan:
    f = ctx.factors
    key = (
        request.model,
        request.active_params_b,
        request.total_params_b,
        request.precision,
        request.hardware,
        request.gpus,
        request.batch_size,
        ctx.place,
        id(f),
        boundary,
        embodied,
        unknown_generic,
    )
    plan = _PLANS.get(key)
    if plan is not None and plan.factors is f:
        return plan
    plan = _make_plan(request, ctx, boundary, embodied, unknown_generic)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _make_plan(request: LLMRequest, ctx: Context, boundary: str, embodied: bool, unknown_generic: bool) -> _Plan:
    f = ctx.factors
    if boundary not in BOUNDARY_PARTS:
        raise InputError(f"unknown boundary {boundary!r}; choose accelerator, server or datacenter")
    warnings: list[str] = []
    from wattlens.estimate.names import resolve

    # Which model the name means: a catalogue row (also by Hugging Face id, Ollama tag, GGUF file
    # name, dated or -latest alias), else the size and precision the name states, else a generic model.
    res = resolve(request.model, f) if request.model else None
    spec = res.spec if res else None
    precision = request.precision
    if res is not None and res.precision and precision is None:
        precision = res.precision  # q4_K_M, AWQ, fp8... in the name
    active: Interval | float
    total: Interval | float
    if request.active_params_b is not None:
        if spec is None:
            warnings.append("model-not-in-catalogue")
        active = request.active_params_b
        total = request.total_params_b if request.total_params_b is not None else request.active_params_b
    else:
        if res is None:
            raise InputError("give a catalogue model name or --active-params")
        if not res.known and not unknown_generic:
            f.models.get(res.name)  # raises UnknownKeyError with suggestions
        active, total = res.active_params_b, res.total_params_b
        warnings.extend(res.warnings)
        if spec is not None and "estimated" in spec.params_basis:
            warnings.append("params-estimated")
    hardware = request.hardware or (spec.hardware if spec else "H100-SXM")
    if request.hardware is None and spec is not None and spec.provider in ("openai", "anthropic", "google"):
        warnings.append("hardware-assumed")
    prepared = prepare_request(
        active_params_b=active,
        total_params_b=total,
        precision=precision or (spec.precision if spec else "bf16"),
        hardware=hardware,
        gpus=request.gpus,
        batch_size=request.batch_size,
        factors=f,
        model_id=spec.model_id if spec else request.model,
        provider=spec.provider if spec else None,
        hardware_alternatives=serving_profile(spec.provider).hardware if spec and request.hardware is None else (),
    )
    site = site_basis(
        ctx,
        default_zone=(spec.zone or None) if spec else None,
        default_facility=spec.facility if spec else None,
    )
    chip = prepared.acc.name
    hosts = (f.hardware.get(chip), f.hardware.get(HOST_SERVER.get(chip, "HGX-H100-host"))) if embodied else None
    parts = [b for b in BOUNDARY_PARTS[boundary] if b not in ("facility", "embodied")]  # impacts.footprint's
    if "facility" in BOUNDARY_PARTS[boundary]:
        parts.append("facility")
    if hosts is not None:
        parts.append("embodied")
    plan = _Plan(
        factors=f,
        prepared=prepared,
        site=site,
        boundary_parts=BOUNDARY_PARTS[boundary],
        hosts=hosts,
        model=spec.model_id if spec else request.model,
        warnings=tuple(warnings),
    )
    if not _Fast.eligible(plan):
        return plan
    return dataclasses.replace(plan, receipt_parts=tuple(parts), fast=_Fast(plan, boundary))


__all__ = ["LLMRequest", "Place", "Receipt", "estimate_footprint", "estimate_receipt"]
