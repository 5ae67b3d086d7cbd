"""How far each unknown serving input moves an estimate: the replica a request runs on, its
evaluation at other batch, replica, parameter and hardware values, and the log spreads that the
interval adds in quadrature (cached per quarter-octave of tokens: they vary slowly with them)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from wattlens.estimate.model import KV_BYTES_PER_TOKEN_PER_SQRT_B, Accelerator, Coefficients, Workload, request_parts
from wattlens.estimate.serving import Architecture, ServingProfile


@functools.lru_cache(maxsize=256)
def gpus_needed(total_params_b: float, precision: str, memory_gb: float) -> int:
    """Smallest power-of-two count whose memory holds the weights with 25% left for the KV cache."""
    n = max(1, math.ceil(total_params_b * _STORED_BYTES.get(precision, 2.0) / (0.75 * memory_gb)))
    return int(2 ** math.ceil(math.log2(n)))


_STORED_BYTES = {"fp8": 1.0, "int8": 1.0, "mxfp4": 0.53, "int4": 0.53, "fp4": 0.53}


def log_spread(mid: float, values: Sequence[float]) -> tuple[float, float]:
    """How far below and above the mid a set of alternative evaluations reaches, in log units."""
    lo = min(values)
    hi = max(values)
    if not (mid > 0 and lo > 0):  # a request with no tokens: nothing to spread
        return 0.0, 0.0
    return max(0.0, math.log(mid / lo)), max(0.0, math.log(hi / mid))


class Case:
    """What one estimate holds fixed while it varies the unknown inputs (hashable, for the spread cache)."""

    __slots__ = (
        "_hash",
        "_key",
        "acc",
        "active",
        "alternatives",
        "arch",
        "batch_size",
        "c",
        "gpus",
        "precision",
        "profile",
        "total",
    )

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
        self._hash: int | None = None

    def key(self) -> tuple[Any, ...]:
        if self._key is None:  # hashed only when the spread cache is consulted
            self._key = (self.active, self.total, self.precision, self.acc, self.alternatives, self.gpus,
                         self.batch_size, self.profile, self.arch, self.c)  # fmt: skip
        return self._key

    def __hash__(self) -> int:
        if self._hash is None:  # a prepared request keeps its Case: hash its nested rows once
            self._hash = hash(self.key())
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Case) and self.key() == other.key()

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
        share = self.arch.route_share if self.arch else 0.0
        w = Workload(a, t, self.precision, n, batch, fin, fout, fcached, kv_given, width, share)
        pj, dj, ps, ds, step = request_parts(w, chip, self.c)
        scale = self.profile.prefill_efficiency[1] / self.c.eta_prefill  # prefill time ~ 1 / efficiency
        return w, pj * scale, dj, ps * scale, ds, step


def bucket(tokens: float) -> float:
    """Tokens rounded to a quarter-octave (±9 %), the resolution of the cached spreads."""
    return 0.0 if tokens <= 0 else 2.0 ** (round(4.0 * math.log2(tokens)) / 4.0)


@functools.lru_cache(maxsize=8192)
def input_spreads(case: Case, fin: float, fout: float, fcached: float) -> tuple[tuple[float, float], ...]:
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
        out.append(log_spread(j_mid, [energy(a_mid, t_mid, b_lo), energy(a_mid, t_mid, b_hi)]))
    if n_range:
        out.append(log_spread(j_mid, [energy(a_mid, t_mid, b_mid, n=n) for n in n_range]))
    if a_lo != a_hi or t_lo != t_hi:
        out.append(log_spread(j_mid, [energy(a_lo, t_lo, b_mid), energy(a_hi, t_hi, b_mid)]))
    if case.alternatives:
        out.append(log_spread(j_mid, [j_mid, *(energy(a_mid, t_mid, b_mid, ch) for ch in case.alternatives)]))
    return tuple(out)


class MidModel:
    """`Case.run` at the mid inputs of one prepared request, with everything that does not depend on
    the token counts worked out once: the same operations on the same floats in the same order as
    `run` and model.request_parts, so the figures are bit for bit the same
    (tests/test_receipt_speed.py checks it against `run` on random token counts for every case).
    """

    __slots__ = (
        "_parts",
        "c_act",
        "c_attn",
        "c_bpp_moe",
        "c_comm",
        "c_comp_den",
        "c_flops",
        "c_free",
        "c_kv",
        "c_mem_den",
        "c_moe_keep",
        "c_moe_rest",
        "c_pgpus",
        "c_pow",
        "c_prefill_den",
        "c_wbt_n",
        "coef",
        "fixed_batch",
        "group",
        "n",
        "per_gpu_n",
        "scale",
        "tdp",
    )

    def __init__(self, case: Case, per_gpu: float | None, n: int) -> None:
        from wattlens.estimate.model import (
            ATTN_WIDTH_LAYERS_PER_B07,
            TP_GROUP_MAX,
            bytes_per_param,
            peak_tflops,
            route_share,
        )

        c, chip, arch = case.c, case.acc, case.arch
        a = case.active[1]
        t = max(case.total[1], a)
        kv_given = arch.kv_bytes_per_token if arch else 0.0
        width = arch.attn_width_layers if arch else 0.0
        self.coef, self.n, self.tdp = c, n, chip.tdp_w
        # run(): the replica's batch, capped by the KV cache that fits
        self.fixed_batch = float(case.batch_size or 1.0) if per_gpu is None else None
        self.per_gpu_n = per_gpu * n if per_gpu is not None else 0.0
        self.c_kv = kv_given or KV_BYTES_PER_TOKEN_PER_SQRT_B * math.sqrt(a)  # kv (run) == kv_bytes_per_token(w)
        self.c_free = n * chip.memory_gb * 1e9 * 0.9 - t * 1e9 * _STORED_BYTES.get(case.precision, 2.0)
        # weight_bytes_touched(): constant unless an MoE's touched experts grow with the batch
        bpp = bytes_per_param(case.precision, c)
        if t > a:
            frac = min(1.0, c.moe_touch * route_share(Workload(a, t, case.precision, n, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                                               arch.route_share if arch else 0.0)))  # fmt: skip
            self.c_act, self.c_moe_rest, self.c_moe_keep, self.c_bpp_moe = a, t - a, 1.0 - frac, bpp
            self.c_wbt_n = None
        else:
            self.c_act, self.c_moe_rest, self.c_moe_keep, self.c_bpp_moe = a, 0.0, 0.0, bpp
            self.c_wbt_n = a * 1e9 * bpp / n
        # _step_times(), power_share(), _prefill_s()
        self.group = min(n, TP_GROUP_MAX)
        self.c_flops = 2.0 * a * 1e9
        self.c_mem_den = chip.memory_bandwidth_tb_per_s * 1e12 * c.eta_mem * chip.efficiency
        peak = peak_tflops(chip, case.precision)
        self.c_comp_den = peak * 1e12 * c.eta_comp * chip.efficiency
        self.c_comm = math.log2(self.group) * math.sqrt(a)
        self.c_pow = n * chip.tdp_w
        self.c_pgpus = c.p_gpus * math.log2(min(n, TP_GROUP_MAX))
        self.c_prefill_den = peak * 1e12 * c.eta_prefill * chip.efficiency
        self.c_attn = width or ATTN_WIDTH_LAYERS_PER_B07 * math.pow(a, 0.7)
        self.scale = case.profile.prefill_efficiency[1] / c.eta_prefill
        self._parts = self._compile()

    def parts(self, fin: float, fout: float, fcached: float) -> tuple[float, float, float, float, float, float]:
        """(prefill J, decode J, prefill s, decode s, step s, replica batch) as `Case.run` gives them."""
        return self._parts(fin, fout, fcached)

    def _compile(self) -> Callable[[float, float, float], tuple[float, float, float, float, float, float]]:
        """`parts` as a closure over the constants (locals cost less to read than attributes)."""
        from wattlens.estimate.model import CACHED_INPUT_COST as cached_cost

        c, n, tdp, p_prefill, scale = self.coef, self.n, self.tdp, self.coef.p_prefill, self.scale
        t_fixed, t_comm, t_comm_token = c.t_fixed_s, c.t_comm_s, c.t_comm_token_s
        p_floor, p_busy, p_batch = c.p_floor, c.p_busy, c.p_batch
        fixed_batch, pn, kv, free = self.fixed_batch, self.per_gpu_n, self.c_kv, self.c_free
        wbt_const, act, moe_rest, moe_keep, bpp = self.c_wbt_n, self.c_act, self.c_moe_rest, self.c_moe_keep, self.c_bpp_moe
        mem_den, comp_den, k_flops, k_comm, group = self.c_mem_den, self.c_comp_den, self.c_flops, self.c_comm, self.group
        k_pow, k_gpus, prefill_den, k_attn = self.c_pow, self.c_pgpus, self.c_prefill_den, self.c_attn
        log, pow_ = math.log, math.pow

        def parts(fin: float, fout: float, fcached: float) -> tuple[float, float, float, float, float, float]:
            batch = fixed_batch
            if batch is None:
                context = (fin + fout) * kv
                batch = min(pn, max(1.0, free / context)) if context > 0 else pn
            per_chip = batch / n
            wbt_n = wbt_const
            if wbt_n is None:
                wbt_n = (act + moe_rest * (1.0 - pow_(moe_keep, batch))) * 1e9 * bpp / n
            t_mem = (wbt_n + per_chip * (fin + fout / 2.0) * kv) / mem_den
            t_comp = k_flops * per_chip / comp_den
            busy = max(t_mem, t_comp) + 0.5 * min(t_mem, t_comp)
            group_batch = per_chip * group
            step = t_fixed + k_comm * (t_comm + t_comm_token * group_batch) + busy
            p = p_floor + p_busy * (busy / step) + p_batch * log(max(group_batch, 1.0)) - k_gpus
            power_w = k_pow * min(1.0, max(0.1, p))
            fresh = max(fin - fcached, 0.0)
            prefill_s = (k_flops * (fresh + cached_cost * fcached) + k_attn * (fin**2 - fcached**2)) / prefill_den
            step_s = fout * step + t_fixed
            return (
                prefill_s * tdp * p_prefill * scale,
                power_w * step_s / batch,
                prefill_s * scale,
                n * step_s / batch,
                step,
                batch,
            )

        return parts
