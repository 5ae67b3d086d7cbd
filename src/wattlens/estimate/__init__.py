"""Inference energy of work that was not measured: a calibrated physical model.

``inference_energy`` is the stable interface; docs/estimator.md gives the model
and docs/estimator-validation.md its cross-validated error.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from wattlens.context import BOUNDARIES, Boundary
from wattlens.errors import InputError
from wattlens.estimate.model import (
    KV_BYTES_PER_TOKEN_PER_SQRT_B,
    PRECISIONS,
    Accelerator,
    Coefficients,
    Workload,
    kv_bytes_per_token,
    request_parts,
)
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
UNCALIBRATED_WIDENING = 1.3  # hardware not in the calibration data: a ±30% spread of its own


@dataclass(frozen=True, slots=True)
class Calibration:
    coefficients: Coefficients
    hardware_efficiency: dict[str, float]
    q_low: float
    q_high: float
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
    # (serving profile, architecture, prefill efficiency, mid workload, decode step s): what `assumptions` shows
    basis: tuple[str, str, float, Workload, float] | None = None

    @property
    def assumptions(self) -> dict[str, Any]:
        """Why the figure is what it is: the serving the mid assumes (shown in the receipt)."""
        if self.basis is None:
            return {}
        profile, arch, eta, w, step = self.basis
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
        }

    def at_boundary(self, boundary: str, pue: IntervalLike = 1.0) -> Interval:
        return scale_to_boundary(self.accelerator_wh, boundary, pue)


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The shipped coefficients (fit/estimator/fit.py writes them; never refitted at run time)."""
    text = resources.files("wattlens.estimate").joinpath("coefficients.json").read_text(encoding="utf-8")
    d: dict[str, Any] = json.loads(text)
    return Calibration(
        coefficients=Coefficients(**d["coefficients"]),
        hardware_efficiency=dict(d["hardware_efficiency"]),
        q_low=float(d["log_residual_quantiles"]["low"]),
        q_high=float(d["log_residual_quantiles"]["high"]),
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
    n = max(1, math.ceil(total_params_b * _STORED_BYTES.get(precision, 2.0) / (0.75 * memory_gb)))
    return int(2 ** math.ceil(math.log2(n)))


_STORED_BYTES = {"fp8": 1.0, "int8": 1.0, "mxfp4": 0.53, "int4": 0.53, "fp4": 0.53}


@dataclass(frozen=True, slots=True)
class Architecture:
    """What the estimator reads from a model's published configuration."""

    family: str
    kv_bytes_per_token: float  # bf16 KV cache, all attention layers
    attn_width_layers: float  # attention layers x heads x head dim
    source: str


@functools.lru_cache(maxsize=1)
def _architectures() -> dict[str, Architecture]:
    text = resources.files("wattlens.estimate").joinpath("architectures.csv").read_text(encoding="utf-8")
    out: dict[str, Architecture] = {}
    for r in csv.DictReader(io.StringIO(text)):
        attn, kv_heads, head = int(r["attention_layers"]), int(r["kv_heads"]), int(r["head_dim"])
        latent = int(r["kv_latent_dim"])
        # K and V per KV head in bf16; MLA caches one compressed latent (+ rope key) per layer instead.
        kv = attn * latent * 2.0 if latent else 2.0 * attn * kv_heads * head * 2.0
        arch = Architecture(r["family"], kv, float(attn * int(r["attention_heads"]) * head), r["source"])
        for mid in r["model_ids"].split(";"):
            out[mid.lower()] = arch
    return out


def architecture(model_id: str | None) -> Architecture | None:
    """The published configuration of a model, when the table has it (case-insensitive id)."""
    return _architectures().get(model_id.lower()) if model_id else None


@dataclass(frozen=True, slots=True)
class ServingProfile:
    """How a kind of service runs models when the request does not say (estimate/serving.json)."""

    name: str
    batch_per_gpu: tuple[float, float, float]
    hardware: tuple[str, ...]
    prefill_efficiency: tuple[float, float, float]
    moe_replica_gpus: int  # the widest expert-parallel MoE replica (0: only the fewest that hold it)
    known_moe_replica_gpus: int  # the provider's published layout, 0 when unpublished


@functools.lru_cache(maxsize=1)
def _profiles() -> dict[str, Any]:
    text = resources.files("wattlens.estimate").joinpath("serving.json").read_text(encoding="utf-8")
    return dict(json.loads(text)["profiles"])


@functools.lru_cache(maxsize=64)
def serving_profile(provider: str | None) -> ServingProfile:
    """Production concurrency for API providers, a team's own server for everything else."""
    profiles = _profiles()
    name = "production" if provider and provider in profiles["production"]["applies_to"] else "self-hosted"
    p = profiles[name]
    lo, mid, hi = (float(x) for x in p["batch_per_gpu"])
    e_lo, e_mid, e_hi = (float(x) for x in p["prefill_efficiency"])
    hardware = tuple(p["hardware"].get(provider or "", ()))
    known = int(p["known_moe_replica_gpus"].get(provider or "", 0))
    return ServingProfile(name, (lo, mid, hi), hardware, (e_lo, e_mid, e_hi), int(p["moe_replica_gpus"]), known)


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


def _log_spread(mid: float, values: Sequence[float]) -> tuple[float, float]:
    """How far below and above the mid a set of alternative evaluations reaches, in log units."""
    lo = min(values)
    hi = max(values)
    if not (mid > 0 and lo > 0):  # a request with no tokens: nothing to spread
        return 0.0, 0.0
    return max(0.0, math.log(mid / lo)), max(0.0, math.log(hi / mid))


class _Case:
    """What one estimate holds fixed while it varies the unknown inputs (hashable, for the spread cache)."""

    __slots__ = ("_key", "acc", "active", "alternatives", "arch", "batch_size", "c", "gpus", "precision", "profile", "total")

    def __init__(
        self,
        active: tuple[float, float, float],
        total: tuple[float, float, float],
        precision: str,
        acc: Accelerator,
        alternatives: tuple[Accelerator, ...],
        gpus: int | None,
        batch_size: float | None,
        profile: ServingProfile,
        arch: Architecture | None,
        c: Coefficients,
    ) -> None:
        self.active, self.total, self.precision, self.acc, self.alternatives = active, total, precision, acc, alternatives
        self.gpus, self.batch_size, self.profile, self.arch, self.c = gpus, batch_size, profile, arch, c
        self._key: tuple[Any, ...] | None = None

    def key(self) -> tuple[Any, ...]:
        if self._key is None:  # hashed only when the spread cache is consulted
            self._key = (self.active, self.total, self.precision, self.acc, self.alternatives, self.gpus,
                         self.batch_size, self.profile, self.arch, self.c)  # fmt: skip
        return self._key

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Case) and self.key() == other.key()

    def replica_gpus(self, memory_gb: float) -> tuple[int, tuple[int, ...]]:
        """The replica's chips (mid) and the range it may span: a production MoE runs on the fewest
        that hold the weights (mid) up to a wide expert-parallel group, unless its layout is published."""
        if self.gpus:
            return self.gpus, ()
        fewest = gpus_needed(self.total[2], self.precision, memory_gb)
        if not (self.total[1] > self.active[1] and self.batch_size is None):
            return fewest, ()
        if self.profile.known_moe_replica_gpus:
            return max(fewest, self.profile.known_moe_replica_gpus), ()
        widest = self.profile.moe_replica_gpus
        return fewest, ((fewest, widest) if widest > fewest else ())

    def run(
        self, a: float, t: float, per_gpu: float | None, chip: Accelerator, n: int, fin: float, fout: float, fcached: float
    ) -> tuple[Workload, float, float, float, float, float]:
        """(workload, prefill J, decode J, prefill s, decode s, step s), prefill at the profile's mid efficiency."""
        t = max(t, a)
        kv_given = self.arch.kv_bytes_per_token if self.arch else 0.0
        if per_gpu is None:
            batch = float(self.batch_size or 1.0)
        else:
            # A long context cannot keep the assumed concurrency: the KV cache must fit in memory.
            kv = kv_given or KV_BYTES_PER_TOKEN_PER_SQRT_B * math.sqrt(a)
            free = n * chip.memory_gb * 1e9 * 0.9 - t * 1e9 * _STORED_BYTES.get(self.precision, 2.0)
            context = (fin + fout) * kv
            batch = min(per_gpu * n, max(1.0, free / context)) if context > 0 else per_gpu * n
        width = self.arch.attn_width_layers if self.arch else 0.0
        w = Workload(a, t, self.precision, n, batch, fin, fout, fcached, kv_given, width)
        pj, dj, ps, ds, step = request_parts(w, chip, self.c)
        scale = self.profile.prefill_efficiency[1] / self.c.eta_prefill  # prefill time ~ 1 / efficiency
        return w, pj * scale, dj, ps * scale, ds, step


def _bucket(tokens: float) -> float:
    """Tokens rounded to a quarter-octave (±9 %), the resolution of the cached spreads."""
    return 0.0 if tokens <= 0 else 2.0 ** (round(4.0 * math.log2(tokens)) / 4.0)


@functools.lru_cache(maxsize=8192)
def _input_spreads(case: _Case, fin: float, fout: float, fcached: float) -> tuple[tuple[float, float], ...]:
    """Log spreads (down, up) of the energy over each unknown input's range: batch, replica, parameters, hardware."""
    (a_lo, a_mid, a_hi), (t_lo, t_mid, t_hi) = case.active, case.total
    fcached = min(fcached, fin)
    b_lo, b_mid, b_hi = (None, None, None) if case.batch_size is not None else case.profile.batch_per_gpu
    n_mid, n_range = case.replica_gpus(case.acc.memory_gb)

    def energy(a: float, t: float, per_gpu: float | None, chip: Accelerator = case.acc, n: int = 0) -> float:
        r = case.run(
            a,
            t,
            per_gpu,
            chip,
            n or (n_mid if chip is case.acc else case.replica_gpus(chip.memory_gb)[0]),
            fin,
            fout,
            fcached,
        )
        return r[1] + r[2]

    j_mid = energy(a_mid, t_mid, b_mid)
    out: list[tuple[float, float]] = []
    if case.batch_size is None:
        out.append(_log_spread(j_mid, [energy(a_mid, t_mid, b_lo), energy(a_mid, t_mid, b_hi)]))
    if n_range:
        out.append(_log_spread(j_mid, [energy(a_mid, t_mid, b_mid, n=n) for n in n_range]))
    if a_lo != a_hi or t_lo != t_hi:
        out.append(_log_spread(j_mid, [energy(a_lo, t_lo, b_mid), energy(a_hi, t_hi, b_mid)]))
    if case.alternatives:
        out.append(_log_spread(j_mid, [j_mid, *(energy(a_mid, t_mid, b_mid, ch) for ch in case.alternatives)]))
    return tuple(out)


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
    profile = serving_profile(provider)
    alternatives = (
        tuple(accelerator_for(factors.hardware.get(h))[0] for h in dict.fromkeys(hardware_alternatives) if h != hardware)
        if hardware_alternatives
        else ()
    )
    case = _Case(
        (a_lo, a_mid, a_hi),
        (t_lo, t_mid, t_hi),
        precision,
        acc,
        alternatives,
        gpus,
        batch_size,
        profile,
        architecture(model_id),
        cal.coefficients,
    )
    n_gpus, _ = case.replica_gpus(acc.memory_gb)
    b_mid = None if batch_size is not None else profile.batch_per_gpu[1]
    fin, fout, fcached = float(input_tokens), float(output_tokens), float(cached_input_tokens)
    w_mid, pj_mid, dj_mid, ps_mid, ds_mid, step_mid = case.run(a_mid, t_mid, b_mid, acc, n_gpus, fin, fout, fcached)
    j_mid = pj_mid + dj_mid
    warnings: list[str] = ["batch-unknown"] if batch_size is None else []
    # Each unknown input moves the mid by its own spread; independent spreads add in quadrature. The
    # spreads of batch, replica, parameters and hardware are ratios that vary slowly with the token
    # counts: computed at tokens rounded to a quarter-octave and cached, so a receipt costs one evaluation.
    down, up = [-cal.q_low], [cal.q_high]
    unknown = batch_size is None or a_lo != a_hi or t_lo != t_hi or alternatives
    spreads = list(_input_spreads(case, _bucket(fin), _bucket(fout), _bucket(fcached))) if unknown else []
    e_lo, e_mid, e_hi = profile.prefill_efficiency
    if pj_mid > 0:
        spreads.append(_log_spread(j_mid, [dj_mid + pj_mid * e_mid / e for e in (e_lo, e_hi)]))
    if not calibrated:
        warnings.append("hardware-uncalibrated")
        spreads.append((math.log(UNCALIBRATED_WIDENING), math.log(UNCALIBRATED_WIDENING)))
    for d, u in spreads:
        down.append(d)
        up.append(u)
    lo_f = math.exp(-math.hypot(*down))
    hi_f = math.exp(math.hypot(*up))
    energy_wh = Interval(j_mid * lo_f / J_PER_WH, j_mid / J_PER_WH, j_mid * hi_f / J_PER_WH)
    s_mid = ps_mid + ds_mid
    secs = Interval(s_mid * lo_f, s_mid, s_mid * hi_f)
    basis = (
        profile.name if batch_size is None else "given",
        case.arch.family if case.arch else "size law",
        e_mid,
        w_mid,
        step_mid,
    )
    return RequestEstimate(energy_wh, secs, n_gpus, acc.name, tuple(warnings), basis)


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
    "architecture",
    "calibration",
    "estimate_request",
    "inference_energy",
    "scale_to_boundary",
    "serving_profile",
]
