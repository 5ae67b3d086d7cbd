"""How far each unknown serving input moves an estimate: the replica a request runs on, its
evaluation at other batch, replica, parameter and hardware values, and the log spreads that the
interval adds in quadrature (cached per quarter-octave of tokens: they vary slowly with them)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
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
        w = Workload(a, t, self.precision, n, batch, fin, fout, fcached, kv_given, width)
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
