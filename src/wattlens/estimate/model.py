"""Physical model of the accelerator energy of one LLM inference request.

Pure arithmetic on floats (no numpy) so one estimate costs microseconds. The
fitting script (estimate/fit/fit.py) calls the same functions, so what is
validated is what ships. docs/estimator.md explains every term.

Decode, one step for a batch of B sequences on N accelerators:
  bytes   = weights touched this step + B x context x KV bytes per token
  t_mem   = bytes / (N x bandwidth x eta_mem)
  t_comp  = 2 x active params x B / (N x peak FLOP/s x eta_comp)
  t_step  = t_fixed + t_comm x log2(N) + t_mem + t_comp
  busy    = (t_mem + t_comp) / t_step                 (share of the step the chip works)
  power   = N x TDP x (p_floor + p_busy x busy)      (power rises with work, from a floor)
  J/token = power x t_step / B        (each step yields one token per sequence)
Prefill: FLOPs = 2 x active params x input tokens at efficiency eta_prefill,
  drawing (p_floor + p_busy) x TDP; cached input tokens cost CACHED_INPUT_COST
  of a fresh one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "mxfp4", "int4", "fp4")
# KV cache bytes per token of context per sqrt(billion active params), bf16 cache.
# GQA models cluster here: Llama-3.1-8B 131 KB (46 KB/sqrt(B)), Llama-3.1-70B 328 KB (39),
# Qwen3-32B 262 KB (46), Qwen3-235B-A22B 193 KB (41); from the models' published configs.
KV_BYTES_PER_TOKEN_PER_SQRT_B = 43_000.0
CACHED_INPUT_COST = 0.1  # a cached prefix token is read, not recomputed: ~10% of its prefill


@dataclass(frozen=True, slots=True)
class Accelerator:
    """What the model needs to know about a chip (from the hardware table)."""

    name: str
    tdp_w: float
    memory_bandwidth_tb_per_s: float
    bf16_tflops: float
    fp8_tflops: float
    fp4_tflops: float
    memory_gb: float = 80.0
    efficiency: float = 1.0  # share of datasheet speed the serving stack reaches, relative to H100


@dataclass(frozen=True, slots=True)
class Coefficients:
    eta_mem: float
    eta_comp: float
    t_fixed_s: float
    t_comm_s: float
    t_comm_token_s: float
    p_floor: float
    p_busy: float
    p_batch: float
    p_gpus: float
    eta_prefill: float
    moe_touch: float
    fp8_bytes: float
    fp4_bytes: float


@dataclass(frozen=True, slots=True)
class Workload:
    active_params_b: float
    total_params_b: float
    precision: str
    gpus: int
    batch_size: float
    input_tokens: float
    output_tokens: float
    cached_input_tokens: float = 0.0


def bytes_per_param(precision: str, c: Coefficients) -> float:
    """Effective bytes read per weight: fitted for 8- and 4-bit, whose kernels rarely reach the ideal."""
    if precision in ("fp8", "int8"):
        return c.fp8_bytes
    if precision in ("mxfp4", "int4", "fp4"):
        return c.fp4_bytes
    return 2.0


def peak_tflops(acc: Accelerator, precision: str) -> float:
    """Peak FLOP/s for the precision the math runs in; 4-bit weights run fp4 math only where the chip has it."""
    if precision in ("fp8", "int8"):
        return acc.fp8_tflops
    if precision in ("mxfp4", "int4", "fp4"):
        return acc.fp4_tflops if acc.fp4_tflops > acc.fp8_tflops else acc.bf16_tflops
    return acc.bf16_tflops


def weight_bytes_touched(w: Workload, c: Coefficients) -> float:
    """Weights read per decode step. For MoE, the experts touched by B tokens grow with B."""
    b = bytes_per_param(w.precision, c)
    active, total = w.active_params_b, max(w.total_params_b, w.active_params_b)
    if total > active:
        # Probability that one token routes through a given expert weight; moe_touch < 1
        # because attention and shared experts make active/total overstate the routed share.
        frac = min(1.0, c.moe_touch * active / total)
        touched = active + (total - active) * (1.0 - math.pow(1.0 - frac, w.batch_size))
    else:
        touched = active
    return touched * 1e9 * b


def kv_bytes_per_token(w: Workload) -> float:
    return KV_BYTES_PER_TOKEN_PER_SQRT_B * math.sqrt(w.active_params_b)


def _step_work(w: Workload, c: Coefficients) -> tuple[float, float]:
    """Bytes read and FLOPs done by one decode step of the whole batch."""
    context = w.input_tokens + w.output_tokens / 2.0
    bytes_read = weight_bytes_touched(w, c) + w.batch_size * context * kv_bytes_per_token(w)
    flops = 2.0 * w.active_params_b * 1e9 * w.batch_size
    return bytes_read, flops


def _step_times(w: Workload, acc: Accelerator, c: Coefficients) -> tuple[float, float]:
    """(busy seconds, total seconds) of one decode step."""
    bytes_read, flops = _step_work(w, c)
    t_mem = bytes_read / (w.gpus * acc.memory_bandwidth_tb_per_s * 1e12 * c.eta_mem * acc.efficiency)
    t_comp = flops / (w.gpus * peak_tflops(acc, w.precision) * 1e12 * c.eta_comp * acc.efficiency)
    busy = max(t_mem, t_comp) + 0.5 * min(t_mem, t_comp)
    # Tensor-parallel all-reduces: a latency per layer (layers grow ~ sqrt(params)) and a volume
    # per token of the batch (hidden size ~ sqrt(params)); none on one chip.
    comm = math.log2(w.gpus) * math.sqrt(w.active_params_b) * (c.t_comm_s + c.t_comm_token_s * w.batch_size)
    return busy, c.t_fixed_s + comm + busy


def power_share(c: Coefficients, busy_share: float, batch: float, gpus: int) -> float:
    """Share of TDP drawn: a floor, more with the busy share and with batch (more concurrent work per byte),
    less per chip as tensor parallelism adds waiting on the interconnect."""
    p = c.p_floor + c.p_busy * busy_share + c.p_batch * math.log(max(batch, 1.0)) - c.p_gpus * math.log2(gpus)
    return min(1.0, max(0.1, p))


def decode_step_s(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    return _step_times(w, acc, c)[1]


def decode_j_per_token(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    busy, step = _step_times(w, acc, c)
    power_w = w.gpus * acc.tdp_w * power_share(c, busy / step, w.batch_size, w.gpus)
    return power_w * step / w.batch_size


def prefill_j(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    tokens = max(w.input_tokens - w.cached_input_tokens, 0.0) + CACHED_INPUT_COST * w.cached_input_tokens
    seconds = 2.0 * w.active_params_b * 1e9 * tokens / (peak_tflops(acc, w.precision) * 1e12 * c.eta_prefill)
    return seconds * acc.tdp_w * min(1.0, c.p_floor + c.p_busy)


def request_j(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Accelerator energy of one request (J), all accelerators of the replica included."""
    return prefill_j(w, acc, c) + w.output_tokens * decode_j_per_token(w, acc, c)


def request_j_and_gpu_s(w: Workload, acc: Accelerator, c: Coefficients) -> tuple[float, float]:
    """request_j and request_gpu_s in one pass (the hot path of every receipt)."""
    busy, step = _step_times(w, acc, c)
    power_w = w.gpus * acc.tdp_w * power_share(c, busy / step, w.batch_size, w.gpus)
    tokens = max(w.input_tokens - w.cached_input_tokens, 0.0)
    flop_s = 2.0 * w.active_params_b * 1e9 / (peak_tflops(acc, w.precision) * 1e12 * c.eta_prefill)
    prefill_s = flop_s * (tokens + CACHED_INPUT_COST * w.cached_input_tokens)
    joules = prefill_s * acc.tdp_w * min(1.0, c.p_floor + c.p_busy) + w.output_tokens * power_w * step / w.batch_size
    gpu_s = w.gpus * step * w.output_tokens / w.batch_size + flop_s * tokens
    return joules, gpu_s


def request_gpu_s(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Accelerator-seconds the request occupies (its share of batched steps), for embodied emissions."""
    decode = w.gpus * decode_step_s(w, acc, c) * w.output_tokens / w.batch_size
    tokens = max(w.input_tokens - w.cached_input_tokens, 0.0)
    prefill = 2.0 * w.active_params_b * 1e9 * tokens / (peak_tflops(acc, w.precision) * 1e12 * c.eta_prefill)
    return decode + prefill
