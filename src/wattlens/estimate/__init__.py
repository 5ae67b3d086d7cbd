"""Inference energy of work that was not measured: a calibrated physical model.

``inference_energy`` is the stable interface; docs/estimator.md gives the model
and docs/estimator-validation.md its cross-validated error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattlens.context import BOUNDARIES, Boundary
from wattlens.errors import InputError
from wattlens.estimate.boundary import BOUNDARY_PARTS, HOST_RATIO, IDLE_RATIO, NO_FLEET, scale_to_boundary
from wattlens.estimate.calibration import Calibration, accelerator_for, calibration
from wattlens.estimate.model import (
    PRECISIONS,
    Workload,
    kv_bytes_per_token,
)
from wattlens.estimate.serving import architecture, serving_profile
from wattlens.estimate.spread import Case, MidModel, bucket, input_spreads
from wattlens.units import J_PER_WH, Interval, IntervalLike

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
_PRECISION_SET = frozenset(PRECISIONS)
UNCALIBRATED_WIDENING = 1.3  # hardware not in the calibration data: a ±30% spread of its own


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """Accelerator energy and occupancy of one request, before the server and facility."""

    accelerator_wh: Interval
    accelerator_s: Interval
    gpus: int
    hardware: str
    warnings: tuple[str, ...]
    # (serving profile, architecture, prefill efficiency, fleet factor, mid workload, decode step s):
    # what `assumptions` shows
    basis: tuple[str, str, float, float, Workload, float] | None = None
    fleet: Interval = NO_FLEET  # fleet accelerator energy over the assumed batch's (server boundary on)

    @property
    def assumptions(self) -> dict[str, Any]:
        """Why the figure is what it is: the serving the mid assumes (shown in the receipt)."""
        if self.basis is None:
            return {}
        profile, arch, eta, fleet, w, step = self.basis
        return {
            "serving_profile": profile,
            "hardware": self.hardware,
            "gpus": self.gpus,
            "batch_per_gpu": round(w.batch_size / w.gpus, 2),
            "precision": w.precision,
            "active_params_b": round(w.active_params_b, 3),
            "kv_kb_per_token": round(kv_bytes_per_token(w) / 1e3, 1),
            "architecture": arch,
            "prefill_efficiency": eta,
            "tokens_per_s_per_gpu": round(w.batch_size / w.gpus / step, 1),
            "fleet_factor": fleet,
        }

    def at_boundary(self, boundary: str, pue: IntervalLike = 1.0) -> Interval:
        return scale_to_boundary(self.accelerator_wh, boundary, pue, self.fleet)


def _bounds(v: IntervalLike) -> tuple[float, float, float]:
    if isinstance(v, Interval):
        return v.low, v.mid, v.high
    x = float(v)
    if not math.isfinite(x):
        raise InputError(f"parameter counts must be finite, got {v}")
    return x, x, x


def _check(**values: float | None) -> None:
    for name, v in values.items():
        if v is None:
            continue
        if not math.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a non-negative number, got {v}")


def estimate_request(
    *,
    active_params_b: IntervalLike,
    total_params_b: IntervalLike,
    precision: str = "bf16",
    hardware: str = "H100",
    gpus: int | None = 1,
    batch_size: float | None = None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    factors: FactorSet,
    model_id: str | None = None,
    provider: str | None = None,
    hardware_alternatives: Sequence[str] = (),
) -> RequestEstimate:
    """Accelerator energy (Wh) and accelerator-seconds of one request, as intervals.

    `hardware` is looked up in the factor set, so a user's hardware file reaches the model.
    `batch_size` is the replica's concurrency; None takes the provider's serving profile
    (sequences per accelerator). `model_id` finds the model's published configuration (KV cache,
    attention width); `hardware_alternatives` are other chips the work may run on.

    The interval combines, in quadrature on a log scale, the spread of each input that is really
    unknown (batch, parameters, hardware, prefill efficiency) with the model's own out-of-sample
    error (docs/estimator.md).
    """
    return prepare_request(
        active_params_b=active_params_b,
        total_params_b=total_params_b,
        precision=precision,
        hardware=hardware,
        gpus=gpus,
        batch_size=batch_size,
        factors=factors,
        model_id=model_id,
        provider=provider,
        hardware_alternatives=hardware_alternatives,
    ).evaluate(input_tokens, output_tokens, cached_input_tokens)


class PreparedRequest:
    """Everything of an estimate that does not depend on the token counts, checked and looked up once.

    A receipt keeps one per model and context (receipt.py), so a request costs one model
    evaluation and the interval's arithmetic.
    """

    __slots__ = (
        "_spreads",
        "_warnings",
        "acc",
        "b_mid",
        "basis_name",
        "calibrated",
        "case",
        "fleet",
        "mid",
        "n_gpus",
        "q_high",
        "q_low",
        "unknown",
    )

    def __init__(self, case: Case, calibrated: bool, given_batch: bool, q_low: float, q_high: float) -> None:
        self.case, self.acc, self.calibrated = case, case.acc, calibrated
        self.n_gpus = case.replica_gpus(case.acc.memory_gb)[0]
        self.b_mid = None if given_batch else case.profile.batch_per_gpu[1]
        self.mid = MidModel(case, self.b_mid, self.n_gpus)
        self.q_low, self.q_high = q_low, q_high
        self._spreads: dict[tuple[float, float, float], tuple[tuple[float, ...], tuple[float, ...]]] = {}
        # A fleet's accelerators spend more energy per request than its peak batch gives (serving.json):
        # counted from the server boundary on, as the servers are operated.
        self.fleet = NO_FLEET if given_batch else Interval(*case.profile.fleet_factor)
        (a_lo, _, a_hi), (t_lo, _, t_hi) = case.active, case.total
        self.unknown = not given_batch or a_lo != a_hi or t_lo != t_hi or bool(case.alternatives)
        self.basis_name = (
            "given" if given_batch else case.profile.name,
            case.arch.family if case.arch else "size law",
        )
        warnings = [] if given_batch else ["batch-unknown"]
        if not calibrated:
            warnings.append("hardware-uncalibrated")
        self._warnings = tuple(warnings)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The estimator's warning codes: the same for every token count."""
        return self._warnings

    def figures(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> tuple[float, ...]:
        """`evaluate` on plain floats, the hot path of a receipt: (Wh low, mid, high, accelerator-s low, mid,
        high, the replica's batch, the decode step s)."""
        if not (input_tokens >= 0 and output_tokens >= 0 and cached_input_tokens >= 0):
            _check(input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens)
        if cached_input_tokens > input_tokens:
            raise InputError("cached input tokens cannot exceed input tokens")
        case = self.case
        fin, fout, fcached = float(input_tokens), float(output_tokens), float(cached_input_tokens)
        pj_mid, dj_mid, ps_mid, ds_mid, step_mid, batch = self.mid._parts(fin, fout, fcached)
        j_mid = pj_mid + dj_mid
        # Each unknown input moves the mid by its own spread; independent spreads add in quadrature. The
        # spreads of batch, replica, parameters and hardware are ratios that vary slowly with the token
        # counts: computed at tokens rounded to a quarter-octave and cached, so a receipt costs one evaluation.
        b_in, b_out = _BUCKETS.get(input_tokens), _BUCKETS.get(output_tokens)  # _bucket, inlined where cached
        key = (
            b_in if b_in is not None else _bucket(input_tokens),
            b_out if b_out is not None else _bucket(output_tokens),
            _bucket(cached_input_tokens) if cached_input_tokens else 0.0,
        )
        known = self._spreads.get(key)
        if known is None:
            known = self._spreads_at(key)
        down, up = known
        if pj_mid > 0:  # log_spread over the profile's prefill efficiencies, written out
            e_lo, e_mid, e_hi = case.profile.prefill_efficiency
            v1, v2 = dj_mid + pj_mid * e_mid / e_lo, dj_mid + pj_mid * e_mid / e_hi
            lo, hi = min(v1, v2), max(v1, v2)
            if j_mid > 0 and lo > 0:
                down = (*down, max(0.0, math.log(j_mid / lo)))
                up = (*up, max(0.0, math.log(hi / j_mid)))
            else:
                down = (*down, 0.0)
                up = (*up, 0.0)
        if not self.calibrated:
            down = (*down, _LOG_UNCALIBRATED)
            up = (*up, _LOG_UNCALIBRATED)
        lo_f = math.exp(-math.hypot(*down))
        hi_f = math.exp(math.hypot(*up))
        s_mid = ps_mid + ds_mid
        return (
            j_mid * lo_f / J_PER_WH,
            j_mid / J_PER_WH,
            j_mid * hi_f / J_PER_WH,
            s_mid * lo_f,
            s_mid,
            s_mid * hi_f,
            batch,
            step_mid,
        )

    def _spreads_at(self, key: tuple[float, float, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The model's own error and the unknown inputs' spreads (down, up) at bucketed token counts, kept."""
        down, up = [-self.q_low], [self.q_high]
        if self.unknown:
            for d, u in input_spreads(self.case, *key):
                down.append(d)
                up.append(u)
        if len(self._spreads) >= 4096:
            self._spreads.clear()
        got = self._spreads[key] = (tuple(down), tuple(up))
        return got

    def evaluate(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> RequestEstimate:
        """The estimate for these token counts (the same figures as `estimate_request`)."""
        e_lo, e_mid, e_hi, s_lo, s_mid, s_hi, batch, step = self.figures(input_tokens, output_tokens, cached_input_tokens)
        case = self.case
        arch = case.arch
        w_mid = Workload(
            case.active[1],
            max(case.total[1], case.active[1]),
            case.precision,
            self.n_gpus,
            batch,
            float(input_tokens),
            float(output_tokens),
            float(cached_input_tokens),
            arch.kv_bytes_per_token if arch else 0.0,
            arch.attn_width_layers if arch else 0.0,
            arch.route_share if arch else 0.0,
        )
        basis = (*self.basis_name, case.profile.prefill_efficiency[1], self.fleet.mid, w_mid, step)
        return RequestEstimate(
            Interval(e_lo, e_mid, e_hi),
            Interval(s_lo, s_mid, s_hi),
            self.n_gpus,
            self.acc.name,
            self._warnings,
            basis,
            self.fleet,
        )


_BUCKETS: dict[int, float] = {}  # token count -> its quarter-octave (bucket() costs a log and a power)


def _bucket(tokens: int) -> float:
    b = _BUCKETS.get(tokens)
    if b is None:
        b = bucket(float(tokens))
        if len(_BUCKETS) < 65536:
            _BUCKETS[tokens] = b
    return b


_LOG_UNCALIBRATED = math.log(UNCALIBRATED_WIDENING)


def prepare_request(
    *,
    active_params_b: IntervalLike,
    total_params_b: IntervalLike,
    precision: str = "bf16",
    hardware: str = "H100",
    gpus: int | None = 1,
    batch_size: float | None = None,
    factors: FactorSet,
    model_id: str | None = None,
    provider: str | None = None,
    hardware_alternatives: Sequence[str] = (),
) -> PreparedRequest:
    """The token-independent part of `estimate_request`: validated inputs, chips, profile, architecture."""
    a_lo, a_mid, a_hi = _bounds(active_params_b)
    t_lo, t_mid, t_hi = _bounds(total_params_b)
    if not a_lo > 0:
        raise InputError("active parameters must be positive (billions)")
    if t_mid < a_mid:
        raise InputError(f"total parameters ({t_mid}B) cannot be fewer than active ({a_mid}B)")
    if precision not in _PRECISION_SET:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if batch_size is not None and (not math.isfinite(batch_size) or batch_size < 1):
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if gpus is not None and gpus < 1:
        raise InputError(f"gpus must be at least 1, got {gpus}")
    cal = calibration()
    acc, calibrated = accelerator_for(factors.hardware.get(hardware))
    alternatives = (
        tuple(accelerator_for(factors.hardware.get(h))[0] for h in dict.fromkeys(hardware_alternatives) if h != hardware)
        if hardware_alternatives
        else ()
    )
    case = Case(
        (a_lo, a_mid, a_hi),
        (t_lo, t_mid, t_hi),
        precision,
        acc,
        alternatives,
        gpus,
        batch_size,
        serving_profile(provider),
        architecture(model_id),
        cal.coefficients,
    )
    return PreparedRequest(case, calibrated, batch_size is not None, cal.q_low, cal.q_high)


def inference_energy(
    *,
    active_params_b: IntervalLike,
    total_params_b: IntervalLike,
    precision: str = "bf16",
    hardware: str = "H100",
    gpus: int | None = 1,
    batch_size: float | None = None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    boundary: Boundary = "accelerator",
    pue: IntervalLike = 1.0,
    factors: FactorSet | None = None,
) -> Interval:
    """Energy in Wh of one LLM inference request at the chosen boundary.

    batch_size=None means the serving concurrency is unknown: the interval then spans
    a production range of batch sizes. ``pue`` applies only at the datacenter boundary.
    ``factors`` defaults to the built-in tables (give a loaded set for your own hardware rows).
    """
    if factors is None:
        from wattlens.factors import builtin

        factors = builtin()
    est = estimate_request(
        active_params_b=active_params_b,
        total_params_b=total_params_b,
        precision=precision,
        hardware=hardware,
        gpus=gpus,
        batch_size=batch_size,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        factors=factors,
    )
    return est.at_boundary(boundary, pue)


__all__ = [
    "BOUNDARIES",
    "BOUNDARY_PARTS",
    "HOST_RATIO",
    "IDLE_RATIO",
    "Calibration",
    "PreparedRequest",
    "RequestEstimate",
    "accelerator_for",
    "architecture",
    "calibration",
    "estimate_request",
    "inference_energy",
    "prepare_request",
    "scale_to_boundary",
    "serving_profile",
]
