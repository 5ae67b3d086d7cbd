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
from wattlens.estimate import PreparedRequest, prepare_request, serving_profile
from wattlens.estimate.boundary import BOUNDARY_PARTS, scale_to_boundary
from wattlens.factors import builtin  # loaded by the estimator's imports already
from wattlens.footprint import Footprint, Tokens, new_footprint, new_tokens
from wattlens.impacts import EmbodiedShare, SiteBasis, footprint, site_basis
from wattlens.receipt_floats import GPUS_PER_HOST, _Fast, _Figures
from wattlens.units import Interval, _sig6, interval, sig6_all, unchecked_interval

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.factors.records import Hardware

HOST_SERVER = {"B200": "HGX-B200-host", "GB200": "HGX-B200-host"}


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
        # The bounds are ordered and >= 0 by construction: only NaN or infinity needs Interval's checks
        # (which raise), and one sum finds either.
        new = unchecked_interval if sum(v) < _INF else interval
        location = new(v[6], v[7], v[8])
        return new_footprint(
            new(v[0], v[1], v[2]),
            new(v[3], v[4], v[5]),
            location,
            location if v[6:9] == v[9:12] else new(v[9], v[10], v[11]),
            new(v[12], v[13], v[14]),
            new(v[15], v[16], v[17]),
            new(v[18], v[19], v[20]),
            priced.grid,
            "estimated",
            plan.receipt_parts,
            plan.factors.version,
            plan.model,
            new_tokens(inp, cached, out, reasoning),
            priced.warnings,
            interval(*marginal) if marginal is not None else None,
            assumptions,
            None,  # measurement: an estimate has none
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
