"""Inference energy of work that was not measured: a calibrated physical model.

``inference_energy`` is the stable interface; docs/estimator.md gives the model
and docs/estimator-validation.md its cross-validated error.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from wattlens.context import BOUNDARIES, Boundary
from wattlens.errors import InputError
from wattlens.estimate.model import PRECISIONS, Accelerator, Coefficients, Workload, request_j_and_gpu_s
from wattlens.units import J_PER_WH, Interval, IntervalLike

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.factors.records import Hardware
# Host CPU + DRAM + network per unit of accelerator energy. Google (arXiv 2508.15734) reports
# 0.06 Wh host for 0.14 Wh accelerator on a median Gemini prompt (0.43); DGX H100's non-GPU
# power budget is 4.6 of 10.2 kW at full load; 0.25 covers well-packed hosts at low load.
HOST_RATIO = Interval(0.25, 0.43, 0.60)
# Idle and reserved capacity per unit of active server energy: Google 0.02 / 0.20 Wh (0.10);
# fleets with more headroom for peaks and failover run up to ~0.3.
IDLE_RATIO = Interval(0.05, 0.10, 0.30)
_PRECISION_SET = frozenset(PRECISIONS)
UNCALIBRATED_WIDENING = 1.3  # hardware not in the calibration data: widen each bound by 30%


@dataclass(frozen=True, slots=True)
class Calibration:
    coefficients: Coefficients
    hardware_efficiency: dict[str, float]
    q_low: float
    q_high: float
    unknown_batch: tuple[float, float, float]
    version: str
    task_input_tokens: dict[str, float]


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """Accelerator energy and occupancy of one request, before the server and facility."""

    accelerator_wh: Interval
    accelerator_s: Interval
    gpus: int
    hardware: str
    warnings: tuple[str, ...]

    def at_boundary(self, boundary: str, pue: IntervalLike = 1.0) -> Interval:
        return scale_to_boundary(self.accelerator_wh, boundary, pue)


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The shipped coefficients (fit/estimator/fit.py writes them; never refitted at run time)."""
    text = resources.files("wattlens.estimate").joinpath("coefficients.json").read_text(encoding="utf-8")
    d: dict[str, Any] = json.loads(text)
    lo, mid, hi = d["unknown_batch_range"]
    return Calibration(
        coefficients=Coefficients(**d["coefficients"]),
        hardware_efficiency=dict(d["hardware_efficiency"]),
        q_low=float(d["log_residual_quantiles"]["low"]),
        q_high=float(d["log_residual_quantiles"]["high"]),
        unknown_batch=(float(lo), float(mid), float(hi)),
        version=str(d["version"]),
        task_input_tokens={k: float(v) for k, v in d["task_input_tokens"].items()},
    )


# The parts of the work each boundary counts (facility: the PUE overhead, added by impacts).
BOUNDARY_PARTS: dict[str, tuple[str, ...]] = {
    "accelerator": ("accelerator",),
    "server": ("accelerator", "host"),
    "datacenter": ("accelerator", "host", "idle", "facility"),
}


_HOST_FACTOR = HOST_RATIO + 1.0
_IDLE_FACTOR = IDLE_RATIO + 1.0


def scale_to_boundary(accelerator_wh: Interval, boundary: str, pue: IntervalLike = 1.0) -> Interval:
    """accelerator -> server (x (1 + host ratio)) -> datacenter (x (1 + idle ratio) x PUE)."""
    if boundary == "accelerator":
        return accelerator_wh
    server = accelerator_wh * _HOST_FACTOR
    if boundary == "server":
        return server
    if boundary == "datacenter":
        dc = server * _IDLE_FACTOR
        return dc if isinstance(pue, int | float) and pue == 1.0 else dc * Interval.of(pue)
    raise InputError(f"unknown boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")


def accelerator_for(hw: Hardware) -> tuple[Accelerator, bool]:
    """The model's view of a hardware row, and whether the chip is in the calibration data.

    Cached by the row's identity: hashing a whole row on every request costs microseconds.
    """
    hit = _ACCELERATORS.get(id(hw))
    if hit is not None and hit[0] is hw:
        return hit[1]
    result = _accelerator(hw)
    if len(_ACCELERATORS) > 256:
        _ACCELERATORS.clear()
    _ACCELERATORS[id(hw)] = (hw, result)
    return result


_ACCELERATORS: dict[int, tuple[Hardware, tuple[Accelerator, bool]]] = {}


def _accelerator(hw: Hardware) -> tuple[Accelerator, bool]:
    if hw.kind != "accelerator" or not hw.memory_bandwidth_tb_per_s or not hw.bf16_tflops:
        raise InputError(f"{hw.hardware_id} is not an accelerator with bandwidth and FLOP/s in the hardware table")
    cal = calibration()
    eff = cal.hardware_efficiency.get(hw.hardware_id)
    acc = Accelerator(
        name=hw.hardware_id,
        tdp_w=hw.max_power_w,
        memory_bandwidth_tb_per_s=hw.memory_bandwidth_tb_per_s,
        bf16_tflops=hw.bf16_tflops,
        fp8_tflops=hw.fp8_tflops or hw.bf16_tflops,
        fp4_tflops=hw.fp4_tflops or hw.fp8_tflops or hw.bf16_tflops,
        memory_gb=hw.memory_gb,
        # Uncalibrated chips take the mean software efficiency of the calibrated ones.
        efficiency=eff if eff is not None else sum(cal.hardware_efficiency.values()) / len(cal.hardware_efficiency),
    )
    return acc, eff is not None


@functools.lru_cache(maxsize=256)
def gpus_needed(total_params_b: float, precision: str, memory_gb: float) -> int:
    """Smallest power-of-two count whose memory holds the weights with 25% left for the KV cache."""
    bytes_per = {"fp8": 1.0, "int8": 1.0, "mxfp4": 0.53, "int4": 0.53, "fp4": 0.53}.get(precision, 2.0)
    n = max(1, math.ceil(total_params_b * bytes_per / (0.75 * memory_gb)))
    return int(2 ** math.ceil(math.log2(n)))


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
) -> RequestEstimate:
    """Accelerator energy (Wh) and accelerator-seconds of one request, as intervals.

    `hardware` is looked up in the factor set, so a user's hardware file reaches the model.
    """
    a_lo, a_mid, a_hi = _bounds(active_params_b)
    t_lo, t_mid, t_hi = _bounds(total_params_b)
    if not (input_tokens >= 0 and output_tokens >= 0 and cached_input_tokens >= 0):
        _check(input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens)
    if not a_lo > 0:
        raise InputError("active parameters must be positive (billions)")
    if t_mid < a_mid:
        raise InputError(f"total parameters ({t_mid}B) cannot be fewer than active ({a_mid}B)")
    if cached_input_tokens > input_tokens:
        raise InputError("cached input tokens cannot exceed input tokens")
    if precision not in _PRECISION_SET:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if batch_size is not None and (not math.isfinite(batch_size) or batch_size < 1):
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if gpus is not None and gpus < 1:
        raise InputError(f"gpus must be at least 1, got {gpus}")
    cal = calibration()
    acc, calibrated = accelerator_for(factors.hardware.get(hardware))
    n_gpus = gpus or gpus_needed(t_hi, precision, acc.memory_gb)
    warnings: list[str] = []
    if batch_size is None:
        b_low_energy, b_mid, b_high_energy = cal.unknown_batch[2], cal.unknown_batch[1], cal.unknown_batch[0]
        warnings.append("batch-unknown")
    else:
        b_low_energy = b_mid = b_high_energy = float(batch_size)

    def run(a: float, t: float, b: float) -> tuple[float, float]:
        w = Workload(
            a, max(t, a), precision, n_gpus, b, float(input_tokens), float(output_tokens), float(cached_input_tokens)
        )
        return request_j_and_gpu_s(w, acc, cal.coefficients)

    j_mid, s_mid = run(a_mid, t_mid, b_mid)
    if a_lo == a_hi and t_lo == t_hi and b_low_energy == b_high_energy:
        (j_lo, s_lo), (j_hi, s_hi) = (j_mid, s_mid), (j_mid, s_mid)  # a point input: one evaluation
    else:
        j_lo, s_lo = run(a_lo, t_lo, b_low_energy)
        j_hi, s_hi = run(a_hi, t_hi, b_high_energy)
    widen = 1.0 if calibrated else UNCALIBRATED_WIDENING
    if not calibrated:
        warnings.append("hardware-uncalibrated")
    lo_f, hi_f = math.exp(cal.q_low) / widen, math.exp(cal.q_high) * widen
    lo_j, hi_j = min(j_lo, j_mid, j_hi), max(j_lo, j_mid, j_hi)
    energy = Interval(lo_j * lo_f / J_PER_WH, j_mid / J_PER_WH, hi_j * hi_f / J_PER_WH)
    secs = Interval(min(s_lo, s_mid, s_hi) * lo_f, s_mid, max(s_lo, s_mid, s_hi) * hi_f)
    return RequestEstimate(energy, secs, n_gpus, acc.name, tuple(warnings))


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
    "RequestEstimate",
    "calibration",
    "estimate_request",
    "inference_energy",
    "scale_to_boundary",
]
