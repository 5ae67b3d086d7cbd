"""Physical model of the accelerator energy of one LLM inference request.

Pure arithmetic on floats (no numpy) so one estimate costs microseconds. The
fitting script (fit/estimator/fit.py) calls the same functions, so what is
validated is what ships. docs/estimator.md explains every term.

A replica of N accelerators serves B sequences at once (b = B / N per chip).
Up to one node (8 chips) is one tensor-parallel group; larger replicas are
several such groups sharing expert-parallel MoE weights (DeepSeek's published
serving layout), so communication and power follow the group, not the replica.

Decode, one step, per chip:
  bytes   = weights touched by the replica's batch / N + b x context x KV bytes per token
  t_mem   = bytes / (bandwidth x eta_mem)
  t_comp  = 2 x active params x b / (peak FLOP/s x eta_comp)
  t_step  = t_fixed + t_comm x log2(g) + busy          (g = min(N, 8) chips in a group)
  power   = TDP x (p_floor + p_busy x busy / t_step + p_batch x ln(b x g))
  J/token = power x t_step / b        (each step yields one token per sequence)
Prefill: FLOPs = 2 x active params x tokens + layers x attention width x tokens^2
  (causal attention over the prompt), at efficiency eta_prefill of peak, drawing
  p_prefill x TDP; cached input tokens cost CACHED_INPUT_COST of a fresh one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "mxfp4", "int4", "fp4")
# KV cache bytes per token of context per sqrt(billion active params), bf16 cache, for models
# whose configuration is unknown. GQA models cluster here: Llama-3.1-8B 131 kB (46 kB/sqrt(B)),
# Llama-3.1-70B 328 kB (39), Qwen3-32B 262 kB (46), Qwen3-235B-A22B 193 kB (41); published configs.
KV_BYTES_PER_TOKEN_PER_SQRT_B = 43_000.0
# Layers x attention width (heads x head dim) per billion active params^0.7, for the attention FLOPs
# of prefill when the configuration is unknown: Llama-3.1 8B 32 x 4096 = 131k (law 131k), 70B
# 80 x 8192 = 655k (596k), 405B 126 x 16384 = 2.06M (2.04M); Meta's published configs.
ATTN_WIDTH_LAYERS_PER_B07 = 30_500.0
# A MoE token's share of the routed expert weights, per unit of active/total, when the configuration is
# unknown: active parameters include attention and shared experts, so active/total overstates it. The
# median of (experts per token / routed experts) / (active / total) over the configurations in
# architectures.csv: Llama-4 Maverick 0.18, Scout 0.40, DeepSeek-V3 0.57, Qwen3-30B-A3B 0.58,
# Qwen3-235B-A22B 0.67, Qwen3-Coder-480B 0.69, gpt-oss-120b 0.71, gpt-oss-20b 0.72.
ROUTE_SHARE_PER_ACTIVE_SHARE = 0.62
CACHED_INPUT_COST = 0.1  # a cached prefix token is read, not recomputed: ~10% of its prefill
TP_GROUP_MAX = 8  # chips in one NVLink/ICI node: one tensor-parallel group


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
    p_prefill: float = 0.75


@dataclass(slots=True)  # not frozen: built several times per receipt, and frozen init costs microseconds
class Workload:
    active_params_b: float
    total_params_b: float
    precision: str
    gpus: int
    batch_size: float  # sequences the whole replica serves at once
    input_tokens: float
    output_tokens: float
    cached_input_tokens: float = 0.0
    kv_bytes_per_token: float = 0.0  # from the model's configuration; 0: the size law
    attn_width_layers: float = 0.0  # layers x heads x head dim; 0: the size law
    route_share: float = 0.0  # MoE experts per token / routed experts, from the configuration; 0: the law


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
    """Weights the replica reads per decode step. For MoE, the experts touched by B tokens grow with B."""
    b = bytes_per_param(w.precision, c)
    active, total = w.active_params_b, max(w.total_params_b, w.active_params_b)
    if total > active:
        # Probability that one token routes through a given expert weight: the configuration's experts
        # per token over routed experts, else a share of active/total; moe_touch for uneven routing.
        frac = min(1.0, c.moe_touch * route_share(w))
        touched = active + (total - active) * (1.0 - math.pow(1.0 - frac, w.batch_size))
    else:
        touched = active
    return touched * 1e9 * b


def route_share(w: Workload) -> float:
    """One token's share of a MoE's routed expert weights."""
    if w.route_share > 0:
        return w.route_share
    return ROUTE_SHARE_PER_ACTIVE_SHARE * w.active_params_b / max(w.total_params_b, w.active_params_b)


def kv_bytes_per_token(w: Workload) -> float:
    return w.kv_bytes_per_token or KV_BYTES_PER_TOKEN_PER_SQRT_B * math.sqrt(w.active_params_b)


def attn_width_layers(w: Workload) -> float:
    return w.attn_width_layers or ATTN_WIDTH_LAYERS_PER_B07 * math.pow(w.active_params_b, 0.7)


def _step_times(w: Workload, acc: Accelerator, c: Coefficients) -> tuple[float, float, float]:
    """(busy seconds, total seconds, sequences per tensor-parallel group) of one decode step."""
    n = w.gpus
    per_chip = w.batch_size / n
    group = min(n, TP_GROUP_MAX)
    context = w.input_tokens + w.output_tokens / 2.0
    bytes_read = weight_bytes_touched(w, c) / n + per_chip * context * kv_bytes_per_token(w)
    flops = 2.0 * w.active_params_b * 1e9 * per_chip
    t_mem = bytes_read / (acc.memory_bandwidth_tb_per_s * 1e12 * c.eta_mem * acc.efficiency)
    t_comp = flops / (peak_tflops(acc, w.precision) * 1e12 * c.eta_comp * acc.efficiency)
    busy = max(t_mem, t_comp) + 0.5 * min(t_mem, t_comp)
    group_batch = per_chip * group
    # Tensor-parallel all-reduces: a latency per layer (layers grow ~ sqrt(params)) and a volume
    # per token of the group's batch (hidden size ~ sqrt(params)); none on one chip.
    comm = math.log2(group) * math.sqrt(w.active_params_b) * (c.t_comm_s + c.t_comm_token_s * group_batch)
    return busy, c.t_fixed_s + comm + busy, group_batch


def power_share(c: Coefficients, busy_share: float, batch: float, gpus: int) -> float:
    """Share of TDP drawn: a floor, more with the busy share and with batch (more concurrent work per byte),
    less per chip as tensor parallelism adds waiting on the interconnect."""
    p = c.p_floor + c.p_busy * busy_share + c.p_batch * math.log(max(batch, 1.0)) - c.p_gpus * math.log2(gpus)
    return min(1.0, max(0.1, p))


def decode_step_s(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    return _step_times(w, acc, c)[1]


def decode_j_per_token(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    busy, step, group_batch = _step_times(w, acc, c)
    power_w = w.gpus * acc.tdp_w * power_share(c, busy / step, group_batch, min(w.gpus, TP_GROUP_MAX))
    return power_w * step / w.batch_size


def tokens_per_s_per_gpu(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Output tokens per second per chip the assumed serving reaches (to check against published throughput)."""
    return w.batch_size / w.gpus / decode_step_s(w, acc, c)


def prefill_flops(w: Workload) -> float:
    """Linear layers over the fresh prompt tokens, plus causal attention over the whole prompt
    (cached tokens are attended to but not recomputed)."""
    fresh = max(w.input_tokens - w.cached_input_tokens, 0.0)
    linear = 2.0 * w.active_params_b * 1e9 * (fresh + CACHED_INPUT_COST * w.cached_input_tokens)
    # sum over fresh positions i of 2 x layers x width x i  =  layers x width x (n^2 - cached^2)
    attention = attn_width_layers(w) * (w.input_tokens**2 - w.cached_input_tokens**2)
    return linear + attention


def _prefill_s(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Chip-seconds of prefill (split over the replica's chips, the total is the same)."""
    return prefill_flops(w) / (peak_tflops(acc, w.precision) * 1e12 * c.eta_prefill * acc.efficiency)


def prefill_j(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    return _prefill_s(w, acc, c) * acc.tdp_w * c.p_prefill


def request_j(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Accelerator energy of one request (J), all accelerators of the replica included.

    Besides its output steps, a request's prompt pass costs one step's fixed overhead (launches,
    scheduling), shared by the batch: negligible for chat, most of a small embedding at batch 1."""
    steps = w.output_tokens + c.t_fixed_s / decode_step_s(w, acc, c)
    return prefill_j(w, acc, c) + steps * decode_j_per_token(w, acc, c)


def request_parts(w: Workload, acc: Accelerator, c: Coefficients) -> tuple[float, float, float, float, float]:
    """(prefill J, decode J, prefill chip-s, decode chip-s, decode step s) in one pass (the hot path)."""
    busy, step, group_batch = _step_times(w, acc, c)
    power_w = w.gpus * acc.tdp_w * power_share(c, busy / step, group_batch, min(w.gpus, TP_GROUP_MAX))
    prefill_s = _prefill_s(w, acc, c)
    step_s = w.output_tokens * step + c.t_fixed_s  # output steps plus the prompt pass's fixed overhead
    return (
        prefill_s * acc.tdp_w * c.p_prefill,
        power_w * step_s / w.batch_size,
        prefill_s,
        w.gpus * step_s / w.batch_size,
        step,
    )


def request_j_and_gpu_s(w: Workload, acc: Accelerator, c: Coefficients) -> tuple[float, float]:
    """request_j and request_gpu_s in one pass."""
    pj, dj, ps, ds, _ = request_parts(w, acc, c)
    return pj + dj, ps + ds


def request_gpu_s(w: Workload, acc: Accelerator, c: Coefficients) -> float:
    """Accelerator-seconds the request occupies (its share of batched steps), for embodied emissions."""
    step_s = decode_step_s(w, acc, c) * w.output_tokens + c.t_fixed_s
    return w.gpus * step_s / w.batch_size + _prefill_s(w, acc, c)
