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
from wattlens.estimate import BOUNDARY_PARTS, estimate_request, scale_to_boundary, serving_profile
from wattlens.footprint import Footprint, Tokens
from wattlens.impacts import EmbodiedShare, footprint, resolve_site
from wattlens.units import Interval

if TYPE_CHECKING:
    from wattlens.factors import FactorSet

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
    f = ctx.factors
    boundary = boundary or ctx.boundary
    if boundary not in BOUNDARY_PARTS:
        raise InputError(f"unknown boundary {boundary!r}; choose accelerator, server or datacenter")
    warnings: list[str] = []
    from wattlens.estimate.names import resolve

    # Which model the name means: a catalogue row (also by Hugging Face id, Ollama tag, GGUF file
    # name, dated or -latest alias), else the size and precision the name states, else a generic model.
    res = resolve(request.model, f) if request.model else None
    spec = res.spec if res else None
    if res is not None and res.precision and request.precision is None:
        request = dataclasses.replace(request, precision=res.precision)  # q4_K_M, AWQ, fp8... in the name
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
    est = estimate_request(
        active_params_b=active,
        total_params_b=total,
        precision=request.precision or (spec.precision if spec else "bf16"),
        hardware=hardware,
        gpus=request.gpus,
        batch_size=request.batch_size,
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens + request.reasoning_tokens,
        cached_input_tokens=request.cached_input_tokens,
        factors=f,
        model_id=spec.model_id if spec else request.model,
        provider=spec.provider if spec else None,
        hardware_alternatives=serving_profile(spec.provider).hardware if spec and request.hardware is None else (),
    )
    warnings.extend(est.warnings)
    site = resolve_site(
        ctx,
        default_zone=(spec.zone or None) if spec else None,
        default_facility=spec.facility if spec else None,
        at=at,
    )
    it_wh = scale_to_boundary(est.accelerator_wh, boundary)
    shares: Sequence[EmbodiedShare] = ()
    if embodied:
        acc_hw = f.hardware.get(est.hardware)
        host_hw = f.hardware.get(HOST_SERVER.get(est.hardware, "HGX-H100-host"))
        # accelerator_s already counts every GPU of the replica; the host is shared by 8 GPUs.
        shares = (
            EmbodiedShare(acc_hw, 1.0, est.accelerator_s),
            EmbodiedShare(host_hw, 1.0 / GPUS_PER_HOST, est.accelerator_s),
        )
    return footprint(
        it_wh,
        site,
        method="estimated",
        boundary=BOUNDARY_PARTS[boundary],
        factors_version=f.version,
        embodied=shares,
        model=spec.model_id if spec else request.model,
        tokens=Tokens(request.input_tokens, request.cached_input_tokens, request.output_tokens, request.reasoning_tokens),
        warnings=warnings,
        assumptions=est.assumptions,
    )


__all__ = ["LLMRequest", "Place", "estimate_footprint"]
