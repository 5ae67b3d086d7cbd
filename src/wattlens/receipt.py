"""Receipts for estimated LLM requests: catalogue + estimator + impacts in one call.

Every path that estimates a request (the CLI, metering for the gateway and the SDK wrapper,
plans, the demo) comes through `estimate_footprint`, so the same request in the same context
gets the same receipt everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattlens.context import Context, Place
from wattlens.errors import InputError
from wattlens.estimate import BOUNDARY_PARTS, PreparedRequest, prepare_request, scale_to_boundary, serving_profile
from wattlens.footprint import Footprint, Tokens
from wattlens.impacts import EmbodiedShare, SiteBasis, footprint, site_basis
from wattlens.units import Interval

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.factors.records import Hardware

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
        place = where or Place()
        ctx = Context(place) if factors is None else Context(place, factors=factors)
    boundary = boundary or ctx.boundary
    plan = _plan(request, ctx, boundary, embodied, unknown_generic)
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
        scale_to_boundary(est.accelerator_wh, boundary),
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
    return _Plan(
        factors=f,
        prepared=prepared,
        site=site,
        boundary_parts=BOUNDARY_PARTS[boundary],
        hosts=hosts,
        model=spec.model_id if spec else request.model,
        warnings=tuple(warnings),
    )


__all__ = ["LLMRequest", "Place", "estimate_footprint"]
