"""Fair attribution of measured energy among concurrent requests (pure functions).

Between two consecutive events (a request starts or ends, or a counter is read) power is
taken as constant. The energy of each such slice goes to the requests active in it: by
their token progress in the slice when every active request reports progress, else in
equal shares; a slice with no active request is idle. The shares of a slice sum to the
slice's energy (the last share takes the remainder), so per-request energy plus idle
equals the measured total: energy is conserved.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from wattlens.errors import InputError


@dataclass(frozen=True, slots=True)
class Span:
    """A request on the device from start_s to end_s; tokens, if known, produced at a steady rate."""

    name: str
    start_s: float
    end_s: float
    tokens: float | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    per_request_j: dict[str, float]
    idle_j: float
    total_j: float


def split(energy: float, weights: Sequence[float]) -> list[float]:
    """Split energy by weights (equal shares when all are 0); the parts sum to energy."""
    n = len(weights)
    if n == 0:
        return []
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * n, float(n)
    parts = [energy * w / total for w in weights[:-1]]
    parts.append(energy - sum(parts))
    return parts


def attribute(samples: Sequence[tuple[float, float]], spans: Sequence[Span]) -> Attribution:
    """Share the energy of a cumulative counter trace (time_s, joules) among spans.

    Energy before the first or after the last sample is unknown and not attributed.
    """
    if len(samples) < 2:
        raise InputError("attribution needs at least two counter samples")
    for (t0, _), (t1, _) in itertools.pairwise(samples):
        if t1 < t0:
            raise InputError("counter samples must be in time order")
    for s in spans:
        if s.end_s < s.start_s:
            raise InputError(f"request {s.name!r} ends before it starts")
        if s.tokens is not None and s.tokens < 0:
            raise InputError(f"request {s.name!r} has negative tokens")
    per = dict.fromkeys((s.name for s in spans), 0.0)
    idle = 0.0
    boundaries = sorted({t for s in spans for t in (s.start_s, s.end_s)})
    for (t0, e0), (t1, e1) in itertools.pairwise(samples):
        if t1 == t0:
            idle += e1 - e0  # an instantaneous jump cannot be placed in time
            continue
        power = (e1 - e0) / (t1 - t0)
        cuts = [t0, *(b for b in boundaries if t0 < b < t1), t1]
        for a, b in itertools.pairwise(cuts):
            energy = power * (b - a)
            active = [s for s in spans if s.start_s <= a and s.end_s >= b and s.end_s > s.start_s]
            if not active:
                idle += energy
                continue
            if all(s.tokens is not None for s in active):
                weights = [s.tokens / (s.end_s - s.start_s) for s in active]  # type: ignore[operator]
            else:
                weights = [1.0] * len(active)
            for s, part in zip(active, split(energy, weights), strict=True):
                per[s.name] += part
    total = samples[-1][1] - samples[0][1]
    return Attribution(per, idle, total)
